#!/usr/bin/env python3
"""Checks that packaging names real settings and wires a consistent cluster.

  settings_check.py REPO

- Every SLUICEGATE_* name in the Dockerfile, the compose file and the
  systemd unit and env file is a setting of `KEYS` in src/cli/settings.rs
  (or SLUICEGATE_ADMIN_TOKEN), so a renamed setting breaks this check
  rather than a deployment.
- docker-compose.yml is a cluster that can form: one image built from the
  repository's Dockerfile, distinct node ids, one identical peers list that
  names every service at its cluster port, the shared secret mounted where
  SLUICEGATE_CLUSTER_SECRET_FILE points, one volume per node on the image's
  data dir, distinct published ports, and a stop grace above the server's
  shutdown grace.
"""

import os
import re
import sys

import yaml

from dockerfile import CheckError, runtime_env

NAME = re.compile(r"\bSLUICEGATE_[A-Z0-9_]+\b")
DEFAULT_SHUTDOWN_GRACE_S = 30.0


def known_settings(repo):
    with open(os.path.join(repo, "src/cli/settings.rs"), encoding="utf-8") as handle:
        source = handle.read()
    table = source.partition("const KEYS: &[Key] = &[")[2].partition("];")[0]
    names = {f"SLUICEGATE_{name.upper()}" for name in re.findall(r"key!\((\w+),", table)}
    if len(names) < 10:
        raise CheckError("could not read the KEYS table in src/cli/settings.rs")
    return names | {"SLUICEGATE_ADMIN_TOKEN"}


def check_names(repo, files):
    known = known_settings(repo)
    for path in files:
        with open(os.path.join(repo, path), encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                for name in NAME.findall(line):
                    if name not in known:
                        raise CheckError(f"{path}:{number}: {name} is not a setting")


def seconds(text):
    """A compose or humantime duration such as 45s, 1m30s or 500ms."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text))
    if not parts or "".join(a + b for a, b in parts) != str(text).replace(" ", ""):
        raise CheckError(f"cannot read the duration {text!r}")
    return sum(float(amount) * units[unit] for amount, unit in parts)


def check_compose(repo, compose_path, dockerfile_path):
    with open(compose_path, encoding="utf-8") as handle:
        compose = yaml.safe_load(handle)
    compose_dir = os.path.dirname(os.path.abspath(compose_path))
    services = compose.get("services") or {}
    if len(services) < 3:
        raise CheckError(f"{compose_path}: a cluster needs 3 services, found {len(services)}")
    data_dir = runtime_env(dockerfile_path).get("SLUICEGATE_DATA_DIR")
    if not data_dir:
        raise CheckError(f"{dockerfile_path}: no SLUICEGATE_DATA_DIR in the runtime ENV")
    secrets = compose.get("secrets") or {}
    volumes = compose.get("volumes") or {}

    images, peer_lists, ids, ports, secret_sources, node_volumes = set(), set(), {}, [], set(), []
    for name, service in services.items():
        where = f"{compose_path}: services.{name}"
        build = service.get("build") or {}
        context = os.path.normpath(os.path.join(compose_dir, build.get("context", ".")))
        dockerfile = os.path.normpath(os.path.join(context, build.get("dockerfile", "Dockerfile")))
        if context != os.path.abspath(repo) or dockerfile != os.path.abspath(dockerfile_path):
            raise CheckError(f"{where}: must build {dockerfile_path} with the repository as context")
        images.add(service.get("image"))
        env = {key: str(value) for key, value in (service.get("environment") or {}).items()}
        for key in ("SLUICEGATE_NODE_ID", "SLUICEGATE_CLUSTER_LISTEN",
                    "SLUICEGATE_CLUSTER_PEERS", "SLUICEGATE_CLUSTER_SECRET_FILE"):
            if key not in env:
                raise CheckError(f"{where}: {key} is missing")
        node_id = env["SLUICEGATE_NODE_ID"]
        if node_id in ids:
            raise CheckError(f"{where}: node id {node_id} is also {ids[node_id]}'s")
        ids[node_id] = name
        peer_lists.add(env["SLUICEGATE_CLUSTER_PEERS"])
        peers = dict(entry.split("=", 1) for entry in env["SLUICEGATE_CLUSTER_PEERS"].split(","))
        cluster_port = env["SLUICEGATE_CLUSTER_LISTEN"].rsplit(":", 1)[1]
        if peers.get(node_id) != f"{name}:{cluster_port}":
            raise CheckError(f"{where}: the peers list must give node {node_id} as {name}:{cluster_port}")
        mounted = {}
        for secret in service.get("secrets") or []:
            source = secret if isinstance(secret, str) else secret["source"]
            target = source if isinstance(secret, str) else secret.get("target", source)
            path = target if target.startswith("/") else f"/run/secrets/{target}"
            mounted[path] = source
        source = mounted.get(env["SLUICEGATE_CLUSTER_SECRET_FILE"])
        if source not in secrets:
            raise CheckError(f"{where}: SLUICEGATE_CLUSTER_SECRET_FILE is not a mounted secret")
        secret_sources.add(source)
        data_volumes = [v.split(":")[0] for v in service.get("volumes") or []
                        if isinstance(v, str) and v.split(":")[1] == data_dir]
        if len(data_volumes) != 1 or data_volumes[0] not in volumes:
            raise CheckError(f"{where}: needs one named volume on {data_dir}")
        node_volumes.append(data_volumes[0])
        ports.extend(str(port).rsplit(":", 1)[0] for port in service.get("ports") or [])
        grace = seconds(env.get("SLUICEGATE_SHUTDOWN_GRACE", "30s"))
        if seconds(service.get("stop_grace_period", "10s")) <= grace:
            raise CheckError(f"{where}: stop_grace_period must exceed the shutdown grace ({grace}s)")

    if len(images) != 1:
        raise CheckError(f"{compose_path}: the nodes run different images {sorted(map(str, images))}")
    if len(peer_lists) != 1:
        raise CheckError(f"{compose_path}: the nodes have different peers lists")
    peers = dict(entry.split("=", 1) for entry in next(iter(peer_lists)).split(","))
    if set(peers) != set(ids):
        raise CheckError(f"{compose_path}: the peers list names {sorted(peers)}, the services {sorted(ids)}")
    if len(secret_sources) != 1:
        raise CheckError(f"{compose_path}: the nodes must share one secret")
    if len(set(node_volumes)) != len(node_volumes):
        raise CheckError(f"{compose_path}: two nodes share a data volume")
    if len(set(ports)) != len(ports):
        raise CheckError(f"{compose_path}: two nodes publish the same host port")
    print(f"compose: {len(services)} nodes, one peers list, one secret, "
          f"{len(node_volumes)} data volumes", file=sys.stderr)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    repo = argv[1]
    dockerfile = os.path.join(repo, "packaging/docker/Dockerfile")
    check_names(repo, ["packaging/docker/Dockerfile", "packaging/docker/docker-compose.yml",
                       "packaging/systemd/sluicegate.service", "packaging/systemd/sluicegate.env",
                       "packaging/systemd/sluicegate.service.d/cluster.conf"])
    check_compose(repo, os.path.join(repo, "packaging/docker/docker-compose.yml"), dockerfile)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except CheckError as error:
        print(f"settings_check.py: {error}", file=sys.stderr)
        sys.exit(1)
