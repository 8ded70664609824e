"""Fixtures for the real-client suite: the fake upstream and the gateway as
real processes, the channels and key they need, and the checks every case
shares (the request's log row, and the channel's counted tokens).

`run.sh` builds the binaries and passes their paths in SLUICEGATE_BIN and
FAKE_UPSTREAM_BIN; both processes bind 127.0.0.1:0 and announce their
address, so no port is ever guessed.
"""

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

# examples/fake_upstream.rs names its fake "bench"; replies say "Hello from bench".
FAKE_NAME = "bench"
ADMIN_TOKEN = "clients-admin-token"
STARTUP_SECONDS = 60

OPENAI_MODELS = [
    "gpt-4o-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "whisper-1",
    "tts-1",
    "gpt-realtime",
]
ANTHROPIC_MODEL = "claude-sonnet-5"


class Process:
    """A child process whose output lines are kept, and scanned for its address."""

    def __init__(self, args, env, announce):
        self.lines = []
        self._found = queue.Queue()
        self.child = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pipe in (self.child.stdout, self.child.stderr):
            threading.Thread(target=self._read, args=(pipe, announce), daemon=True).start()
        try:
            self.address = self._found.get(timeout=STARTUP_SECONDS)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"{args[0]} announced no address:\n" + "\n".join(self.lines))

    def _read(self, pipe, announce):
        for line in pipe:
            line = line.rstrip("\n")
            self.lines.append(line)
            address = announce(line)
            if address:
                self._found.put(address)

    def stop(self):
        if self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()


def fake_announce(line):
    prefix = "fake upstream listening on "
    return line[len(prefix) :].strip() if line.startswith(prefix) else None


def gateway_announce(line):
    try:
        event = json.loads(line)
    except ValueError:
        return None
    fields = event.get("fields", event)
    if fields.get("message") == "listening":
        return fields.get("addr")
    return None


def clean_env(**extra):
    """The caller's environment without SLUICEGATE_* or RUST_LOG, plus `extra`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SLUICEGATE_") and name != "RUST_LOG"
    }
    env.update(extra)
    return env


class Gateway:
    """The running gateway: its URL, a client key, and admin helpers."""

    def __init__(self, url, fake_base):
        self.url = url
        self.openai_channel = self._channel(
            {
                "name": "openai-fake",
                "base_url": fake_base,
                "key": "sk-upstream-openai",
                "models": OPENAI_MODELS,
            }
        )
        self.anthropic_channel = self._channel(
            {
                "name": "anthropic-fake",
                "type": "anthropic",
                "base_url": fake_base.removesuffix("/v1"),
                "key": "sk-ant-upstream",
                "models": [ANTHROPIC_MODEL],
            }
        )
        status, token = self.admin("POST", "/api/tokens", {"name": "clients"})
        assert status == 201, token
        self.key = token["key"]

    def admin(self, method, path, body=None):
        """One admin API call with the stdlib (the SDKs' HTTP stacks vary by
        version); returns (status, parsed JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def _channel(self, body):
        status, channel = self.admin("POST", "/api/channels", body)
        assert status == 201, channel
        return channel["id"]

    @property
    def v1(self):
        return f"{self.url}/v1"

    def used(self, channel):
        """Tokens counted today on `channel`, from GET /api/channels/{id}/usage."""
        status, usage = self.admin("GET", f"/api/channels/{channel}/usage")
        assert status == 200, usage
        return usage["used"]

    def log(self, request_id):
        """The request-log row of `request_id`, waiting for the batch writer."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = self.admin("GET", "/api/logs?per_page=500")[1]["items"]
            for row in rows:
                if row["request_id"] == request_id:
                    return row
            time.sleep(0.05)
        raise AssertionError(f"no log row for {request_id}")

    def counted(self, channel, call):
        """Runs `call(request_id)` and returns (its result, its log row), after
        checking that the channel's daily count grew by exactly the row's total."""
        request_id = f"clients-{uuid.uuid4().hex[:16]}"
        before = self.used(channel)
        result = call(request_id)
        row = self.log(request_id)
        assert row["status"] in (200, 101), row
        assert row["channel_ids"][-1] == channel, row
        assert row["total_tokens"] > 0, row
        assert self.used(channel) - before == row["total_tokens"], row
        return result, row


@pytest.fixture(scope="session")
def fake():
    process = Process(
        [os.environ["FAKE_UPSTREAM_BIN"], "127.0.0.1:0"], clean_env(), fake_announce
    )
    yield process.address
    process.stop()


@pytest.fixture(scope="session")
def gateway(fake):
    work = os.environ.get("SLUICEGATE_CLIENTS_WORK") or tempfile.mkdtemp()
    data_dir = tempfile.mkdtemp(dir=work)
    args = [
        os.environ["SLUICEGATE_BIN"],
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--data-dir",
        data_dir,
    ]
    process = Process(args, clean_env(SLUICEGATE_ADMIN_TOKEN=ADMIN_TOKEN), gateway_announce)
    try:
        yield Gateway(f"http://{process.address}", fake)
    finally:
        process.stop()
