"""`/v1/realtime` through the `openai` SDK's own realtime client, and through
plain `websockets` the way a browser authenticates (the key as a
subprotocol). Usage is counted per `response.done`."""

import json

import openai
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import FAKE_NAME


def test_realtime_sdk_client(gateway):
    """The SDK's realtime client talks through the gateway; each response.done is counted as it arrives."""
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)

    def call(rid):
        with client.realtime.connect(
            model="gpt-realtime", extra_headers={"x-request-id": rid}
        ) as connection:
            first = connection.recv()
            assert first.type == "session.created"
            totals = []
            for _ in range(2):
                before = gateway.used(gateway.openai_channel)
                connection.response.create()
                text = ""
                for event in connection:
                    if event.type == "response.output_text.delta":
                        text += event.delta
                    if event.type == "response.done":
                        totals.append(event.response.usage.total_tokens)
                        break
                assert text == f"Hello from {FAKE_NAME}"
                # Counted while the session is still open.
                assert gateway.used(gateway.openai_channel) - before == totals[-1]
            return totals

    totals, row = gateway.counted(gateway.openai_channel, call)
    assert row["endpoint"] == "/v1/realtime"
    assert row["total_tokens"] == sum(totals)


def test_realtime_subprotocol_key(gateway):
    """A browser-style connection carries the key as a subprotocol and gets `realtime` back."""
    url = gateway.v1.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    protocols = ["realtime", f"openai-insecure-api-key.{gateway.key}"]

    def call(rid):
        with connect(url, subprotocols=protocols, additional_headers={"x-request-id": rid}) as ws:
            assert ws.subprotocol == "realtime"
            assert json.loads(ws.recv())["type"] == "session.created"
            ws.send(json.dumps({"type": "response.create"}))
            while True:
                event = json.loads(ws.recv())
                if event["type"] == "response.done":
                    return event["response"]["usage"]["total_tokens"]

    total, row = gateway.counted(gateway.openai_channel, call)
    assert row["total_tokens"] == total


def test_realtime_without_key_is_401(gateway):
    """A WebSocket without a key is refused with 401 before the upgrade."""
    url = gateway.v1.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, subprotocols=["realtime"])
    assert refused.value.response.status_code == 401
    body = json.loads(refused.value.response.body)
    assert body["error"]["code"] == "invalid_api_key"
