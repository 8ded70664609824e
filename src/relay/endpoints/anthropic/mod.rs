//! Anthropic: the native Messages API and the OpenAI ↔ Anthropic translation
//! that lets an `anthropic` channel serve OpenAI chat clients.
//!
//! - `messages`: `POST /v1/messages` and `/v1/messages/count_tokens`.
//! - `translate`: an OpenAI chat request → an Anthropic Messages request.
//! - `reply`: a whole Anthropic reply → an OpenAI chat completion.
//! - `stream`: an Anthropic stream → OpenAI chat completion chunks.
//! - `events`: Anthropic SSE framing and event decoding; watching a native
//!   stream for its usage.
//! - `usage`: Anthropic usage in the meter's terms (cache tokens count).
//! - `bridge`: the per-attempt steps the pipeline takes for `anthropic`
//!   channels (translation, forwarded headers).
//!
//! Apart from the `messages` handlers, these modules are pure: no IO, no
//! clock, no counters. Charging usage stays with `relay::meter`.

pub mod bridge;
pub mod events;
pub mod messages;
pub mod reply;
pub mod stream;
pub mod translate;
pub mod usage;
