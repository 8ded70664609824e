#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/corpus/<target>/, from the shapes
the fake upstream (tests/it/support/upstream/) and real clients send.

Seeds are small real examples; libFuzzer mutates them. Rerun after editing:
    python3 fuzz/seeds.py
It rewrites corpus/ from scratch, so the committed corpus stays seeds only.
"""

import json
import shutil
import struct
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def j(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def data(value, event=None):
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {value if isinstance(value, str) else j(value)}\n\n"


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
IO_USAGE = {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
ANTHROPIC_USAGE = {
    "input_tokens": 5,
    "cache_creation_input_tokens": 20,
    "cache_read_input_tokens": 30,
    "output_tokens": 2,
}


def chat_chunk(delta, usage=None):
    chunk = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fake",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    if usage:
        chunk["usage"] = usage
    return data(chunk)


def response_object(status, usage=None):
    return {
        "id": "resp_fake",
        "object": "response",
        "status": status,
        "model": "fake",
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Responded by a", "annotations": []}],
            }
        ],
        "usage": usage,
    }


OPENAI_STREAMS = {
    "chat": chat_chunk({"role": "assistant", "content": ""})
    + chat_chunk({"content": "Hello "})
    + chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]})
    + chat_chunk(None, USAGE)
    + data("[DONE]"),
    "chat_crlf_tail": chat_chunk({"content": "你好"}).replace("\n", "\r\n") + "data: [DO",
    "completions": data({"object": "text_completion", "choices": [{"text": "Completed ", "index": 0}]})
    + data({"object": "text_completion", "choices": [], "usage": USAGE})
    + data("[DONE]"),
    "responses": data({"type": "response.created", "response": response_object("in_progress")}, "response.created")
    + data({"type": "response.output_text.delta", "delta": "Responded "}, "response.output_text.delta")
    + data({"type": "response.function_call_arguments.delta", "delta": "{}"})
    + data({"type": "response.completed", "response": response_object("completed", IO_USAGE)}, "response.completed"),
    "images": data({"type": "image_generation.partial_image", "b64_json": "RkFLRQ=="})
    + data({"type": "image_generation.completed", "b64_json": "RkFLRQ==", "usage": IO_USAGE}),
    "transcription": data({"type": "transcript.text.delta", "delta": "Transcribed by a"})
    + data({"type": "transcript.text.done", "text": "Transcribed by a", "usage": IO_USAGE}),
    "speech": data({"type": "speech.audio.delta", "audio": "RkFLRQ=="})
    + data({"type": "speech.audio.done", "usage": IO_USAGE}),
    "overflow": chat_chunk(None, {"prompt_tokens": 2**64 - 1, "completion_tokens": 2}),
}


def anthropic_event(payload):
    return data(payload, payload["type"])


def anthropic_stream(tool=False, usage=True):
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [],
                "stop_reason": None,
                "usage": dict(ANTHROPIC_USAGE, output_tokens=1) if usage else None,
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
        {"type": "content_block_stop", "index": 0},
    ]
    if tool:
        events += [
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_fake", "name": "weather", "input": {}},
            },
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}},
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " \"Paris\"}"}},
            {"type": "content_block_stop", "index": 1},
        ]
    delta = {"type": "message_delta", "delta": {"stop_reason": "tool_use" if tool else "end_turn"}}
    if usage:
        delta["usage"] = {"output_tokens": 7}
    events += [delta, {"type": "message_stop"}]
    return "".join(anthropic_event(event) for event in events)


ANTHROPIC_STREAMS = {
    "text": anthropic_stream(),
    "tool": anthropic_stream(tool=True),
    "no_usage": anthropic_stream(usage=False),
    "error": anthropic_event({"type": "message_start", "message": {"id": "m", "model": "c"}})
    + anthropic_event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
}

ANTHROPIC_REPLY = {
    "id": "msg_fake",
    "type": "message",
    "role": "assistant",
    "model": "claude",
    "content": [
        {"type": "thinking", "thinking": "hm"},
        {"type": "text", "text": "Hello from a"},
        {"type": "tool_use", "id": "toolu_fake", "name": "weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": ANTHROPIC_USAGE,
}

REPLIES = {
    "chat": {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello from a",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    },
    "completions": {"object": "text_completion", "choices": [{"text": "Completed by a", "index": 0}], "usage": USAGE},
    "embeddings": {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    },
    "responses": response_object("completed", IO_USAGE),
    "images": {"created": 1700000000, "data": [{"b64_json": "RkFLRQ=="}], "usage": IO_USAGE},
    "moderations": {"id": "modr", "results": [{"flagged": False}]},
    "transcription_tokens": {"text": "Transcribed by a", "usage": dict(IO_USAGE, type="tokens")},
    "transcription_duration": {"text": "Transcribed by a", "usage": {"type": "duration", "seconds": 3}},
    "anthropic": ANTHROPIC_REPLY,
    "anthropic_error": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    "count_tokens": {"input_tokens": 12},
    # Regressions: sums of upstream counts once wrapped (now saturate).
    "overflow": {"usage": {"prompt_tokens": 2**64 - 1, "completion_tokens": 2}},
    "anthropic_overflow": dict(ANTHROPIC_REPLY, usage={"input_tokens": 2**64 - 1, "cache_read_input_tokens": 1, "output_tokens": 1}),
}

CHAT_REQUEST = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}}}],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "max_completion_tokens": 100,
    "temperature": 1.5,
    "stop": ["END"],
    "stream": True,
    "stream_options": {"include_usage": True},
    "user": "u1",
}

REQUESTS = {
    "chat": CHAT_REQUEST,
    "chat_plain": {"model": "llama-3", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 5},
    "legacy_functions": {
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Rules"}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "function_call": {"name": "f", "arguments": ""}},
            {"role": "function", "name": "f", "content": "done"},
            {"role": "user", "content": [{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg=="}}]},
        ],
        "functions": [{"name": "f"}],
        "function_call": {"name": "f"},
    },
    "completions": {"model": "gpt-3.5-turbo-instruct", "prompt": ["Say", [1, 2, 3]], "stream": True},
    "embeddings": {"model": "text-embedding-3-small", "input": ["hello", "world"]},
    "responses": {
        "model": "gpt-4o",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}, {"type": "function_call_output", "output": "ok"}],
        "max_output_tokens": 50,
        "stream": True,
    },
    "images": {"model": "gpt-image-1", "prompt": "a cat", "stream": True},
    "moderations": {"model": "omni-moderation-latest", "input": "text"},
    "speech": {"model": "gpt-4o-mini-tts", "input": "Hello", "voice": "alloy", "stream_format": "sse"},
    "messages": {"model": "claude", "system": [{"type": "text", "text": "Be brief."}], "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10},
}

REALTIME = {
    "done": {"type": "response.done", "response": {"id": "resp", "status": "completed", "usage": {"total_tokens": 30, "input_tokens": 10, "output_tokens": 20}}},
    "done_no_total": {"type": "response.done", "response": {"usage": {"input_tokens": 2**64 - 1, "output_tokens": 20}}},
    "delta": {"type": "response.audio.delta", "delta": "AAAA"},
    "created": {"type": "session.created", "session": {"id": "sess"}},
}


def wav(seconds_of_data_bytes=64, byte_rate=32000):
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, byte_rate, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", seconds_of_data_bytes) + bytes(seconds_of_data_bytes)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def form(fields, file_bytes, boundary="b"):
    out = b""
    for name, value in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    out += (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    out += file_bytes + f"\r\n--{boundary}--\r\n".encode()
    return boundary.encode() + b"\n" + out


AUDIO_FORMS = {
    "wav": form([("model", "whisper-1"), ("stream", "true")], wav()),
    "mp3": form([("model", "gpt-4o-transcribe"), ("language", "en")], b"ID3\x03\x00" + bytes(40), "XyZ"),
}

CHANNEL = {
    "name": "main",
    "type": "openai",
    "base_url": "https://api.openai.com/v1/",
    "key": "sk-one\nsk-two\n",
    "models": ["gpt-4o", " o3 ", "gpt-4o"],
    "model_mapping": {"gpt-4o": "gpt-4o-2024-08-06"},
    "groups": ["default", "vip"],
    "priority": 10,
    "weight": 3,
    "status": "enabled",
    "settings": {"daily_token_limit": 1000000, "daily_reset_timezone": "Asia/Shanghai", "auto_disable": False},
}

CHANNEL_BODIES = {
    "create": CHANNEL,
    "anthropic": {"name": "claude", "type": "anthropic", "base_url": "https://api.anthropic.com", "key": "sk-ant", "models": ["claude"]},
    "patch": {"weight": 0, "settings": {"daily_token_limit": None, "daily_reserve_tokens": 2048}},
    "bad_field": {"name": "x", "base_url": "https://h/v1", "key": "k", "models": [1]},
}

TOKEN_BODIES = {
    "create": {"name": "ci", "group": "default", "models": ["gpt-4o"], "expires_at": "2030-01-31T08:00:00+08:00", "channel_id": 2},
    "minimal": {"name": "laptop"},
    "patch_nulls": {"expires_at": None, "models": None, "channel_id": None, "status": "disabled"},
}

SETTINGS_BODIES = {
    "all": {
        "timezone": "Asia/Shanghai",
        "max_retries": 3,
        "connect_timeout": "10s",
        "first_byte_timeout": "5m",
        "stream_idle_timeout": "1h 30m",
        "auto_disable_rules": ["insufficient_quota", "  account deactivated "],
    },
    "empty": {},
}

CHANNEL_SETTINGS = {
    "limits": {"daily_token_limit": 1000000, "daily_reset_timezone": "Asia/Shanghai", "daily_reserve_tokens": 4096},
    "nulls": {"daily_token_limit": None, "daily_reset_timezone": "", "auto_disable": True, "api_version": "2024-10-21"},
    "bad": {"daily_token_limit": 1.5, "daily_reset_timezone": "Mars/Base"},
}


def write(target, seeds):
    folder = CORPUS / target
    folder.mkdir(parents=True)
    for name, seed in seeds.items():
        if isinstance(seed, (dict, list)):
            seed = j(seed)
        if isinstance(seed, str):
            seed = seed.encode()
        (folder / name).write_bytes(seed)


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    write("sse_usage_openai", OPENAI_STREAMS)
    write("sse_usage_anthropic", ANTHROPIC_STREAMS)
    write("anthropic_stream", ANTHROPIC_STREAMS)
    write("reply_usage", REPLIES)
    write("anthropic_translate_response", {k: REPLIES[k] for k in ("anthropic", "anthropic_error", "chat", "anthropic_overflow")})
    write("request_parse", REQUESTS)
    write("anthropic_translate_request", {k: REQUESTS[k] for k in ("chat", "chat_plain", "legacy_functions")})
    write("audio_form", AUDIO_FORMS)
    write("realtime_frames", REALTIME)
    write("admin_channel_body", CHANNEL_BODIES)
    write("admin_token_body", TOKEN_BODIES)
    write("admin_settings_body", SETTINGS_BODIES)
    write("channel_settings", CHANNEL_SETTINGS)


if __name__ == "__main__":
    main()
