"""Writes the benchmark's large chat request: a deterministic ~300 KB body
shaped like a coding agent's turn (a long system prompt, the files it read,
the conversation so far, tool calls and results), for `bench/run.sh`.

    python3 bench/prompt.py OUT_FILE [MODEL] [STREAM]

The text is generated from a fixed seed, so every run sends the same bytes.
"""

import json
import random
import sys

TARGET_BYTES = 300_000

WORDS = (
    "the a to of and in is for that with on as this be by it are from or at an "
    "request channel token limit usage stream reply model upstream gateway "
    "function return value error result config cluster node counter daily "
    "reset zone window snapshot route select retry affinity cache header body"
).split()

CODE_LINES = [
    "fn select(route: &Route, rng: &mut impl Rng) -> Option<&ChannelEntry> {",
    "    let total = route.weights.last().copied().unwrap_or(0);",
    "    if total == 0 { return None; }",
    "    let draw = rng.random_range(0..total);",
    "    let index = route.weights.partition_point(|weight| *weight <= draw);",
    "    route.entries.get(index)",
    "}",
    "def handle(request, context):",
    "    payload = json.loads(request.body)",
    "    if payload.get(\"stream\"):",
    "        return stream_reply(payload, context)",
    "    return {\"status\": 200, \"items\": [item.id for item in context.items]}",
    "const answer = await client.chat.completions.create({ model, messages });",
    "for (let index = 0; index < rows.length; index += 1) { total += rows[index].tokens; }",
    "SELECT channel_id, SUM(total_tokens) FROM logs WHERE time >= ? GROUP BY channel_id;",
    "    // Reserve before the request leaves, so concurrent requests cannot overshoot.",
    "#[derive(Debug, Clone, Copy, PartialEq, Eq)]",
    "pub struct Demand { pub prompt: u64, pub completion: Option<u64> }",
]

CJK = "令牌限制每日重置时区通道路由请求上游流式响应用量统计集群节点计数器快照"


def prose(rng, words):
    sentence = [rng.choice(WORDS) for _ in range(words)]
    sentence[0] = sentence[0].capitalize()
    return " ".join(sentence) + "."


def code_file(rng, lines):
    return "\n".join(rng.choice(CODE_LINES) for _ in range(lines))


def build(model, stream):
    rng = random.Random(11)
    messages = [{
        "role": "system",
        "content": "\n\n".join(prose(rng, 24) for _ in range(40)),
    }]
    turn = 0
    while len(json.dumps(messages, ensure_ascii=False).encode()) < TARGET_BYTES:
        turn += 1
        messages.append({
            "role": "user",
            "content": [
                {"type": "text", "text": prose(rng, 30)},
                {"type": "text", "text": f"src/file_{turn}.rs:\n```\n{code_file(rng, 120)}\n```"},
            ],
        })
        call_id = f"call_{turn:04d}"
        messages.append({
            "role": "assistant",
            "content": prose(rng, 40) if turn % 3 else "".join(rng.choice(CJK) for _ in range(120)),
            "tool_calls": [{
                "id": call_id,
                "type": "function",
                "function": {"name": "read_file", "arguments": json.dumps({"path": f"src/file_{turn}.rs"})},
            }],
        })
        messages.append({"role": "tool", "tool_call_id": call_id, "content": code_file(rng, 60)})
    messages.append({"role": "user", "content": "Now fix the failing test and explain the change."})
    return {"model": model, "stream": stream, "max_tokens": 1024, "messages": messages}


def main(path, model="gpt-4o-mini", stream="false"):
    body = json.dumps(build(model, stream == "true"), ensure_ascii=False, separators=(",", ":"))
    with open(path, "w", encoding="utf-8") as out:
        out.write(body)


if __name__ == "__main__":
    main(*sys.argv[1:])
