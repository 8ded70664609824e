//! A deterministic ~300 KB chat request shaped like a coding agent's turn
//! (the shape of `bench/prompt.py`, generated here without Python), for
//! benchmarks and tests that need a large prompt.

/// A deterministic ~300 KB chat body shaped like `bench/prompt.py`'s: a
/// long system prompt, then turns of prose, code files and tool results.
pub fn coding_agent() -> String {
    const WORDS: [&str; 12] = [
        "the", "request", "channel", "token", "limit", "usage", "stream", "reply", "model",
        "upstream", "gateway", "counter",
    ];
    const CODE: [&str; 6] = [
        "fn select(route: &Route) -> Option<&ChannelEntry> {",
        "    let total = route.weights.last().copied().unwrap_or(0);",
        "    if payload.get(\"stream\") { return stream_reply(payload, context) }",
        "    // Reserve before the request leaves, so concurrent requests cannot overshoot.",
        "SELECT channel_id, SUM(total_tokens) FROM logs WHERE time >= ? GROUP BY channel_id;",
        "}",
    ];
    let mut seed: u64 = 11;
    let mut next = move |bound: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize % bound
    };
    let mut prose = |words: usize| {
        (0..words)
            .map(|_| WORDS[next(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut messages = vec![serde_json::json!({"role": "system", "content": prose(2_000)})];
    let mut turn = 0;
    while serde_json::to_string(&messages).map_or(0, |text| text.len()) < 300_000 {
        turn += 1;
        let code: Vec<&str> = (0..120)
            .map(|line| CODE[(line * 7 + turn) % CODE.len()])
            .collect();
        messages.push(serde_json::json!({"role": "user", "content": format!("{}\n```\n{}\n```", prose(30), code.join("\n"))}));
        messages.push(serde_json::json!({"role": "assistant", "content": prose(40)}));
    }
    serde_json::json!({"model": "gpt-4o-mini", "max_tokens": 1024, "messages": messages})
        .to_string()
}
