"""The official `openai` Python SDK against the gateway: each case checks the
content the SDK decoded and the tokens the gateway counted for the request."""

import io
import struct
import wave

import openai
import pytest

from conftest import FAKE_NAME


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)


def rid_headers(request_id):
    return {"x-request-id": request_id}


def test_chat_non_stream(gateway, client):
    """A whole chat reply decodes, and its reported usage is what was counted."""
    reply, row = gateway.counted(
        gateway.openai_channel,
        lambda rid: client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello"}],
            extra_headers=rid_headers(rid),
        ),
    )
    assert reply.choices[0].message.content == f"Hello from {FAKE_NAME}"
    assert reply.usage.total_tokens == row["total_tokens"]
    assert row["endpoint"] == "/v1/chat/completions" and row["stream"] is False


def test_chat_stream_with_usage(gateway, client):
    """A streamed chat decodes chunk by chunk; the usage chunk the client asked for arrives and matches the count."""

    def call(rid):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=rid_headers(rid),
        )
        return list(stream)

    chunks, row = gateway.counted(gateway.openai_channel, call)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith(f"{FAKE_NAME}-0 ")
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].total_tokens == row["total_tokens"]
    assert row["stream"] is True


def test_chat_stream_without_usage(gateway, client):
    """A stream whose client did not ask for usage gets no usage chunk, yet the upstream's usage is counted."""

    def call(rid):
        return list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Say hello"}],
                stream=True,
                extra_headers=rid_headers(rid),
            )
        )

    chunks, row = gateway.counted(gateway.openai_channel, call)
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert row["estimated"] is False


def test_completions(gateway, client):
    """A legacy completion decodes and its usage is counted."""
    reply, row = gateway.counted(
        gateway.openai_channel,
        lambda rid: client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Say hello", extra_headers=rid_headers(rid)
        ),
    )
    assert FAKE_NAME in reply.choices[0].text
    assert reply.usage.total_tokens == row["total_tokens"]


def test_completions_stream(gateway, client):
    """A streamed legacy completion decodes and is counted."""

    def call(rid):
        return list(
            client.completions.create(
                model="gpt-3.5-turbo-instruct",
                prompt="Say hello",
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=rid_headers(rid),
            )
        )

    chunks, row = gateway.counted(gateway.openai_channel, call)
    assert FAKE_NAME in "".join(c.choices[0].text for c in chunks if c.choices)
    assert [c.usage.total_tokens for c in chunks if c.usage] == [row["total_tokens"]]


def test_embeddings(gateway, client):
    """Embeddings decode (floats, via the SDK's base64 default) and their usage is counted."""
    reply, row = gateway.counted(
        gateway.openai_channel,
        lambda rid: client.embeddings.create(
            model="text-embedding-3-small", input="hello", extra_headers=rid_headers(rid)
        ),
    )
    assert len(reply.data) == 1 and len(reply.data[0].embedding) > 0
    assert all(isinstance(value, float) for value in reply.data[0].embedding)
    assert reply.usage.total_tokens == row["total_tokens"]


def test_responses(gateway, client):
    """A Responses API reply decodes and its input + output tokens are counted."""
    reply, row = gateway.counted(
        gateway.openai_channel,
        lambda rid: client.responses.create(
            model="gpt-4o-mini", input="Say hello", extra_headers=rid_headers(rid)
        ),
    )
    assert FAKE_NAME in reply.output_text
    assert reply.usage.total_tokens == row["total_tokens"]
    assert reply.usage.input_tokens + reply.usage.output_tokens == row["total_tokens"]


def test_responses_stream(gateway, client):
    """A streamed Responses API reply decodes; response.completed's usage is what was counted."""

    def call(rid):
        with client.responses.stream(
            model="gpt-4o-mini", input="Say hello", extra_headers=rid_headers(rid)
        ) as stream:
            text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
            return text, stream.get_final_response()

    (text, final), row = gateway.counted(gateway.openai_channel, call)
    assert FAKE_NAME in text
    assert final.usage.total_tokens == row["total_tokens"]
    assert row["stream"] is True


def silent_wav(seconds=1.0, rate=16_000):
    """A mono 16-bit WAV of silence, made here so the suite ships no audio."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack("<h", 0) * int(seconds * rate))
    return buffer.getvalue()


def test_transcription(gateway, client):
    """A multipart transcription decodes and is counted (reported or estimated from the duration)."""
    reply, row = gateway.counted(
        gateway.openai_channel,
        lambda rid: client.audio.transcriptions.create(
            model="whisper-1",
            file=("hello.wav", silent_wav(), "audio/wav"),
            extra_headers=rid_headers(rid),
        ),
    )
    assert reply.text
    assert row["endpoint"] == "/v1/audio/transcriptions"


def test_speech(gateway, client):
    """Speech comes back as binary audio and is counted (reported or estimated from the text)."""

    def call(rid):
        with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input="Hello there", extra_headers=rid_headers(rid)
        ) as response:
            return response.headers.get("content-type"), response.read()

    (content_type, audio), row = gateway.counted(gateway.openai_channel, call)
    assert len(audio) > 0
    assert not content_type.startswith("application/json"), content_type
    assert row["endpoint"] == "/v1/audio/speech"
