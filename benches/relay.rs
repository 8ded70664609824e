//! The request path's per-byte work on a ~300 KB coding-agent prompt (the
//! shape of `bench/prompt.py`): the one-pass scan that checks the body and
//! finds its top-level fields, the byte bound a reservation takes, and the
//! splice of the gateway's edits; and the SSE relay over a typical stream.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluicegate::relay::body::{Edit, JsonBody, json_string};
use sluicegate::relay::estimate;
use sluicegate::relay::observe::{OpenAiEvents, Seen};
use sluicegate::relay::sse::SseRelay;

#[path = "../tests/it/support/prompt.rs"]
mod prompt;

fn body(c: &mut Criterion) {
    let bytes = Bytes::from(prompt::coding_agent());
    let mut group = c.benchmark_group("request_300kb");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("scan", |b| {
        b.iter(|| JsonBody::parse(black_box(bytes.clone())))
    });
    group.bench_function("serde_json_ignored_any", |b| {
        b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&bytes)))
    });
    group.bench_function("prompt_bound", |b| {
        b.iter(|| estimate::prompt_bound(black_box(&bytes)))
    });
    let parsed = JsonBody::parse(bytes.clone()).ok();
    let edits = [
        Edit {
            key: "model",
            value: json_string("vendor-model"),
        },
        Edit {
            key: "stream_options",
            value: Bytes::from_static(br#"{"include_usage":true}"#),
        },
    ];
    group.bench_function("splice_two_edits", |b| {
        b.iter(|| parsed.as_ref().map(|body| body.with(black_box(&edits))))
    });
    group.finish();
}

fn stream(c: &mut Criterion) {
    let chunk = |content: &str| {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
        )
    };
    let mut events: Vec<Bytes> = (0..100)
        .map(|index| Bytes::from(chunk(&format!("word{index} "))))
        .collect();
    events.push(Bytes::from_static(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":100,\"total_tokens\":105}}\n\ndata: [DONE]\n\n"));
    c.bench_function("sse_relay_100_events", |b| {
        b.iter(|| {
            let observer = OpenAiEvents {
                hide_usage_chunk: true,
            };
            let mut relay = SseRelay::new(Box::new(observer), Seen::default());
            for event in &events {
                black_box(relay.feed(event.clone()));
            }
            relay.finish()
        })
    });
}

criterion_group!(benches, body, stream);
criterion_main!(benches);
