"""The official `anthropic` Python SDK against the gateway's `/v1/messages`:
content as the SDK decodes it, and the tokens counted (input + output +
cache creation + cache read)."""

import anthropic
import pytest

from conftest import ANTHROPIC_MODEL, FAKE_NAME


@pytest.fixture(scope="module")
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)


def counted_total(usage):
    return (
        usage.input_tokens
        + usage.output_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )


def test_messages_non_stream(gateway, client):
    """A whole message decodes, and its usage is what was counted."""
    message, row = gateway.counted(
        gateway.anthropic_channel,
        lambda rid: client.messages.create(
            model=ANTHROPIC_MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "Say hello"}],
            extra_headers={"x-request-id": rid},
        ),
    )
    assert FAKE_NAME in "".join(block.text for block in message.content if block.type == "text")
    assert counted_total(message.usage) == row["total_tokens"]
    assert row["endpoint"] == "/v1/messages"


def test_messages_stream(gateway, client):
    """A streamed message decodes; message_start + message_delta usage is what was counted."""

    def call(rid):
        with client.messages.stream(
            model=ANTHROPIC_MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "Say hello"}],
            extra_headers={"x-request-id": rid},
        ) as stream:
            text = "".join(stream.text_stream)
            return text, stream.get_final_message()

    (text, final), row = gateway.counted(gateway.anthropic_channel, call)
    assert FAKE_NAME in text
    assert counted_total(final.usage) == row["total_tokens"]
    assert row["stream"] is True
