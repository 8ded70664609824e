// The processes and HTTP helpers the browser test stands on: the fake upstream
// and the gateway as real child processes (each binds 127.0.0.1:0 and
// announces its address, as in tests/clients/conftest.py), the admin API with
// the Bearer token (to check what the UI did, never to do it), and relay
// requests with a client key.
//
// run.sh passes the binaries in SLUICEGATE_BIN and FAKE_UPSTREAM_BIN.

import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const ADMIN_TOKEN = "ui-e2e-admin-token";
const STARTUP_MS = 60_000;
const STOP_MS = 15_000;

/** A child process whose output lines are kept and scanned for its address. */
class Child {
  constructor(args, env, announce) {
    this.lines = [];
    this.child = spawn(args[0], args.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
    this.exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.address = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${args[0]} announced no address:\n${this.lines.join("\n")}`)),
        STARTUP_MS,
      );
      this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${args[0]} exited (${code}) before announcing:\n${this.lines.join("\n")}`));
      });
      for (const stream of [this.child.stdout, this.child.stderr]) {
        createInterface({ input: stream }).on("line", (line) => {
          this.lines.push(line);
          const address = announce(line);
          if (address) {
            clearTimeout(timer);
            resolve(address);
          }
        });
      }
    });
  }

  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), STOP_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

function fakeAnnounce(line) {
  const prefix = "fake upstream listening on ";
  return line.startsWith(prefix) ? line.slice(prefix.length).trim() : null;
}

function gatewayAnnounce(line) {
  let event;
  try {
    event = JSON.parse(line);
  } catch {
    return null;
  }
  const fields = event.fields ?? event;
  return fields.message === "listening" ? fields.addr : null;
}

/** The caller's environment without SLUICEGATE_* or RUST_LOG, plus `extra`. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("SLUICEGATE_") && name !== "RUST_LOG") env[name] = value;
  }
  return { ...env, ...extra };
}

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests/ui/run.sh`);
  return value;
}

/** Starts the fake upstream and the gateway; resolves to { fakeBase, url, stop }. */
export async function startServers() {
  const fake = new Child([required("FAKE_UPSTREAM_BIN"), "127.0.0.1:0"], cleanEnv(), fakeAnnounce);
  let gateway;
  try {
    const fakeBase = await fake.address; // "http://127.0.0.1:port/v1"
    const work = process.env.SLUICEGATE_UI_WORK || tmpdir();
    const dataDir = mkdtempSync(join(work, "data-"));
    gateway = new Child(
      [
        required("SLUICEGATE_BIN"),
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--data-dir",
        dataDir,
      ],
      cleanEnv({ SLUICEGATE_ADMIN_TOKEN: ADMIN_TOKEN }),
      gatewayAnnounce,
    );
    const url = `http://${await gateway.address}`;
    return {
      fakeBase,
      url,
      logs: () => gateway.lines.slice(-40).join("\n"),
      stop: () => Promise.all([gateway.stop(), fake.stop()]),
    };
  } catch (error) {
    await Promise.all([gateway?.stop(), fake.stop()]);
    throw error;
  }
}

/** One admin API call with the Bearer token; resolves to { status, body }. */
export async function admin(url, method, path, body) {
  const response = await fetch(url + path, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** One chat completion with a client key; resolves to { status, body }. */
export async function relay(url, key, model) {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "Hello!" }] }),
  });
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, body };
}

/** Polls `check` (sync or async) until it returns a truthy value or `ms` pass;
 *  resolves to that value, or throws with the last value it saw. */
export async function eventually(what, check, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
