"""Formats bench/run.sh's results (one TSV row per wrk run) as tables."""

import statistics
import sys


def load(path):
    rows = []
    with open(path) as results:
        for line in results:
            kind, target, mode, conc, rps, p50, p99, non2xx, errors = line.split("\t")
            rows.append(dict(kind=kind, target=target, mode=mode, conc=int(conc),
                             rps=float(rps), p50=int(p50), p99=int(p99),
                             bad=int(non2xx) + int(errors)))
    return rows


def main(path, idle_kb, peak_kb, warm_kb=None):
    rows = load(path)
    main_rows = [row for row in rows if row["kind"] == "main"]
    print(f"{'target':<11} {'mode':<7} {'conc':>4} {'req/s':>10} {'p50 µs':>8} {'p99 µs':>8} {'errors':>7}")
    for row in main_rows:
        print(f"{row['target']:<11} {row['mode']:<7} {row['conc']:>4} {row['rps']:>10.0f} "
              f"{row['p50']:>8} {row['p99']:>8} {row['bad']:>7}")

    def main_value(target, mode, conc, key):
        for row in main_rows:
            if (row["target"], row["mode"], row["conc"]) == (target, mode, conc):
                return row[key]
        return None

    def median_p99(target, mode):
        values = [row["p99"] for row in rows
                  if (row["kind"], row["target"], row["mode"]) == ("p99", target, mode)]
        return statistics.median(values) if values else None

    print()
    modes = [mode for mode in ("plain", "stream", "big") if any(row["mode"] == mode for row in main_rows)]
    for mode in modes:
        direct = main_value("direct", mode, 1, "p50")
        for proxy in ("nginx", "sluicegate"):
            proxied = main_value(proxy, mode, 1, "p50")
            direct_p99, proxied_p99 = median_p99("direct", mode), median_p99(proxy, mode)
            if None in (direct, proxied):
                continue
            line = f"added latency c=1 {mode:<6} {proxy:<10}: p50 {proxied - direct:+} µs"
            if None not in (direct_p99, proxied_p99):
                line += f", p99 (median of runs) {proxied_p99 - direct_p99:+} µs"
            print(line)
    for mode in modes:
        levels = sorted({row["conc"] for row in main_rows if row["mode"] == mode and row["conc"] > 1})
        for conc in levels:
            gate, nginx = main_value("sluicegate", mode, conc, "rps"), main_value("nginx", mode, conc, "rps")
            if gate and nginx:
                print(f"throughput c={conc:<3} {mode:<6}: sluicegate / nginx = {gate / nginx:.2f}")
    line = f"sluicegate RSS: idle {int(idle_kb) / 1024:.1f} MiB"
    if warm_kb:
        line += f", after warm-up {int(warm_kb) / 1024:.1f} MiB"
    print(line + f", peak {int(peak_kb) / 1024:.1f} MiB")
    if any(row["bad"] for row in rows):
        print("WARNING: some runs had non-2xx responses or socket errors (see the errors column)")


if __name__ == "__main__":
    main(*sys.argv[1:5])
