//! The one place a relay request is accounted for: its request-log row, its
//! `tracing` event, and its tokens in the channel's daily counter.
//!
//! # Daily counting
//! Before each attempt the relay takes a [`Hold`] on the channel: a
//! reservation of the estimated tokens against the channel's daily cap
//! (channels without a limit reserve nothing). Every hold ends here, exactly
//! once:
//! - a failed attempt ([`Meter::attempt_failed`]) counts only the usage the
//!   upstream reported for it, and releases the rest;
//! - the attempt that served the client is counted when the request is over
//!   ([`finish`]): the raw total (`total_tokens`, else prompt + completion),
//!   or the gateway's estimate when the upstream reported none (estimated
//!   totals count too), on the day the request completes, in the channel's
//!   zone;
//! - an estimate needs the request's and reply's text parsed and, for
//!   OpenAI models, tokenized: that runs after the reply, on the blocking
//!   pool ([`Estimate`]), and the request is counted and logged when it is
//!   done; its hold stays reserved until then;
//! - a client that went away mid-stream is counted for what it was sent (the
//!   reported usage if it arrived, else the estimate of what was seen);
//! - a request dropped before any upstream success releases its hold;
//! - a long-lived session (a realtime WebSocket) is counted while it runs,
//!   one reported usage at a time ([`Meter::count_running`]): the first count
//!   replaces the hold's reservation, and the log row written when the
//!   session ends carries the sum, without counting it again.
//!
//! Endpoints therefore only hand over usage; they never touch the counters.
//!
//! Endpoints do not call [`finish`] directly. They hold a [`Meter`], tell it
//! what happened, and let it record on drop. Drop is what makes a client
//! disconnect (the handler future or the response stream is dropped
//! mid-way) still produce a log row.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::observe::Completion;
use super::request_id::RequestId;
use super::usage::{RawUsage, TextMeasure, Usage};
use crate::AppState;
use crate::daily::{Capped, Counters, Reservation};
use crate::error::{ApiError, OpenAiError};
use crate::model::{ChannelId, RequestLog, TokenId};
use crate::snapshot::ChannelEntry;

/// The log-only error code of a request whose client went away first.
pub const CLIENT_CLOSED: &str = "client_closed";
/// The status logged when the client went away before any response (as nginx does).
const CLIENT_CLOSED_STATUS: u16 = 499;

/// Everything known about a request once it is over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub request_id: String,
    pub token_id: Option<TokenId>,
    pub channel_ids: Vec<ChannelId>,
    pub model: String,
    pub upstream_model: Option<String>,
    pub endpoint: &'static str,
    pub stream: bool,
    /// The HTTP status the client got.
    pub status: u16,
    pub error_code: Option<&'static str>,
    pub usage: Usage,
    pub latency: Duration,
    pub ttft: Option<Duration>,
    /// The daily-counter hold of the last attempt, if it is still open.
    pub hold: Option<Hold>,
    /// Whether an upstream success reached the client: the hold is then
    /// counted with `usage.total`, otherwise released.
    pub served: bool,
}

/// An attempt's claim on its channel's daily counter: the channel, the zone
/// its day is in, and the reservation (none for channels without a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a hold must be counted or released"]
pub struct Hold {
    pub channel_id: ChannelId,
    pub zone: Tz,
    pub reservation: Option<Reservation>,
}

impl Hold {
    /// Admits an attempt on `entry` if its day is not capped, reserving
    /// `estimate` tokens in the same step so concurrent requests cannot all
    /// slip under the cap. Channels without a limit are always admitted and
    /// reserve nothing.
    pub fn take(
        counters: &Counters,
        entry: &ChannelEntry,
        estimate: u64,
        now: DateTime<Utc>,
    ) -> Result<Hold, Capped> {
        let channel_id = entry.channel.id;
        let reservation = if entry.cap.limit == 0 {
            None
        } else {
            Some(counters.try_reserve(channel_id, entry.cap, estimate, now)?)
        };
        Ok(Hold {
            channel_id,
            zone: entry.cap.zone,
            reservation,
        })
    }

    /// Counts `tokens` on the day `now` falls on, replacing the reservation.
    pub fn count(self, counters: &Counters, tokens: u64, now: DateTime<Utc>) {
        if tokens == 0 && self.reservation.is_none() {
            return;
        }
        counters.count(self.channel_id, self.zone, tokens, self.reservation, now);
    }

    /// Gives the reservation back without counting anything.
    pub fn release(self, counters: &Counters) {
        if let Some(reservation) = self.reservation {
            counters.release(reservation);
        }
    }
}

/// Records a finished request: settles its daily-counter hold, queues its
/// log row and emits its event. Keys never appear in either.
pub fn finish(state: &AppState, mut outcome: Outcome) {
    let now = state.clock.now();
    if let Some(hold) = outcome.hold.take() {
        if outcome.served {
            hold.count(&state.counters, outcome.usage.total, now);
            state.metrics.counted(hold.channel_id, outcome.usage.total);
        } else {
            hold.release(&state.counters);
        }
    }
    let finished = crate::metrics::Finished {
        channel: outcome.channel_ids.last().copied(),
        model: &outcome.model,
        endpoint: outcome.endpoint,
        status: outcome.status,
        prompt_tokens: outcome.usage.prompt,
        completion_tokens: outcome.usage.completion,
        estimated_tokens: (outcome.served && outcome.usage.estimated)
            .then_some(outcome.usage.total),
        ttft: outcome.ttft,
    };
    state.metrics.finished(&finished, || state.snapshot());
    let channel_ids: Vec<i64> = outcome.channel_ids.iter().map(|id| id.0).collect();
    tracing::info!(
        request_id = %outcome.request_id,
        token_id = outcome.token_id.map(|id| id.0),
        channels = ?channel_ids,
        model = %outcome.model,
        stream = outcome.stream,
        status = outcome.status,
        error = outcome.error_code,
        total_tokens = outcome.usage.total,
        estimated = outcome.usage.estimated,
        latency_us = u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX),
        "relayed"
    );
    state.logs.record(RequestLog {
        id: 0,
        time: now,
        request_id: outcome.request_id,
        token_id: outcome.token_id,
        channel_ids: outcome.channel_ids,
        model: outcome.model,
        upstream_model: outcome.upstream_model,
        endpoint: outcome.endpoint.to_string(),
        stream: outcome.stream,
        status: outcome.status,
        error_code: outcome.error_code.map(str::to_string),
        prompt_tokens: outcome.usage.prompt,
        completion_tokens: outcome.usage.completion,
        total_tokens: outcome.usage.total,
        estimated: outcome.usage.estimated,
        latency_ms: millis(outcome.latency),
        ttft_ms: outcome.ttft.map(millis),
    });
}

/// Records a request whose usage must be estimated: the estimate runs on
/// the blocking pool (tracked, so a graceful stop waits for it), then the
/// request is recorded like any other.
fn finish_estimated(state: &AppState, mut outcome: Outcome, estimate: Estimate) {
    let finishing = state.clone();
    let run = move || {
        outcome.usage = estimate.usage();
        finish(&finishing, outcome);
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        state.finishing.spawn_blocking(run);
    } else {
        run();
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What the prompt's estimate is made from, if the upstream reports no usage.
#[derive(Debug, Clone)]
pub enum PromptText {
    /// A size known up front.
    Known(u64),
    /// A JSON body and the endpoint's count of its prompt for a model.
    Json {
        body: Bytes,
        count: fn(&Map<String, Value>, &str) -> u64,
    },
}

/// What the completion's estimate is made from.
#[derive(Debug, Clone)]
enum CompletionText {
    /// Measured as it streamed (some of it perhaps kept unread).
    Streamed(Completion),
    /// A whole reply and the endpoint's measure of it.
    Reply {
        body: Bytes,
        measure: fn(&[u8], &mut TextMeasure),
    },
}

/// The inputs of one request's estimate, computed off the async workers.
#[derive(Debug, Clone)]
pub struct Estimate {
    model: String,
    prompt: PromptText,
    completion: CompletionText,
}

impl Estimate {
    /// The estimated usage: the prompt and the completion text counted
    /// (with the model's tokenizer for OpenAI models). A body that does not
    /// parse as a tree (the scan accepted it, so only a limit of the parser
    /// could refuse it) falls back to its byte bound.
    pub fn usage(&self) -> Usage {
        let prompt = match &self.prompt {
            PromptText::Known(tokens) => *tokens,
            PromptText::Json { body, count } => match serde_json::from_slice(body) {
                Ok(map) => count(&map, &self.model),
                Err(_) => super::estimate::prompt_bound(body),
            },
        };
        let completion = match &self.completion {
            CompletionText::Streamed(completion) => completion.clone().measure(),
            CompletionText::Reply { body, measure } => {
                let mut text = TextMeasure::for_model(&self.model);
                measure(body, &mut text);
                text
            }
        };
        Usage::estimated(prompt, &completion)
    }
}

/// A request in flight; records its [`Outcome`] through [`finish`] when dropped.
pub struct Meter {
    state: AppState,
    started: Instant,
    outcome: Outcome,
    /// What the prompt is estimated from, if the upstream reports no usage.
    prompt: PromptText,
    reported: Option<RawUsage>,
    completion: CompletionText,
    /// Whether an upstream success reached the client, so that missing
    /// usage must be estimated rather than counted as zero.
    served: bool,
    /// Usage already counted while the request ran (see [`Meter::count_running`]).
    running: Option<Usage>,
    /// Whether this endpoint estimates missing usage at all.
    estimate: bool,
}

impl Meter {
    /// Starts metering an authenticated request.
    pub fn start(
        state: &AppState,
        request_id: &RequestId,
        token_id: TokenId,
        endpoint: &'static str,
        started: Instant,
    ) -> Meter {
        Meter {
            state: state.clone(),
            started,
            outcome: Outcome {
                request_id: request_id.as_str().to_string(),
                token_id: Some(token_id),
                channel_ids: Vec::new(),
                model: String::new(),
                upstream_model: None,
                endpoint,
                stream: false,
                status: CLIENT_CLOSED_STATUS,
                error_code: Some(CLIENT_CLOSED),
                usage: Usage::default(),
                latency: Duration::ZERO,
                ttft: None,
                hold: None,
                served: false,
            },
            prompt: PromptText::Known(0),
            reported: None,
            completion: CompletionText::Streamed(Completion::default()),
            served: false,
            running: None,
            estimate: true,
        }
    }

    /// The parsed request: its model, stream flag, and what its prompt is
    /// estimated from if no usage comes.
    pub fn request(&mut self, model: &str, stream: bool, prompt: PromptText) {
        self.outcome.model = model.to_string();
        self.outcome.stream = stream;
        self.prompt = prompt;
    }

    /// One more channel tried, under its upstream model name.
    pub fn tried(&mut self, channel: ChannelId, upstream_model: &str) {
        if let Some(previous) = self.outcome.channel_ids.last() {
            self.state.metrics.retried(*previous);
        }
        self.outcome.channel_ids.push(channel);
        if self.outcome.upstream_model.as_deref() != Some(upstream_model) {
            self.outcome.upstream_model = Some(upstream_model.to_string());
        }
    }

    /// The daily-counter hold of the attempt about to start.
    pub fn hold(&mut self, hold: Hold) {
        if let Some(previous) = self.outcome.hold.replace(hold) {
            // An attempt always ends before the next begins; never leak.
            previous.release(&self.state.counters);
        }
    }

    /// The attempt failed: counts what the upstream reported it consumed
    /// (if anything), on the day it failed, and releases the rest.
    pub fn attempt_failed(&mut self, reported: Option<RawUsage>) {
        let Some(hold) = self.outcome.hold.take() else {
            return;
        };
        let tokens = reported.map_or(0, |raw| Usage::reported(raw).total);
        if tokens > 0 {
            hold.count(&self.state.counters, tokens, self.state.clock.now());
            self.state.metrics.counted(hold.channel_id, tokens);
        } else {
            hold.release(&self.state.counters);
        }
    }

    /// The upstream's first body bytes arrived (time to first token).
    pub fn first_byte(&mut self) {
        self.outcome
            .ttft
            .get_or_insert_with(|| self.started.elapsed());
    }

    /// The status the client gets, and the error code if it is a failure.
    pub fn respond(&mut self, status: StatusCode, error_code: Option<&'static str>) {
        self.outcome.status = status.as_u16();
        self.outcome.error_code = error_code;
    }

    /// Records an error response and renders it for the client.
    pub fn fail(&mut self, error: ApiError) -> OpenAiError {
        self.failed(error).openai()
    }

    /// Records an error response; the caller renders it in its envelope.
    pub fn failed(&mut self, error: ApiError) -> ApiError {
        self.respond(error.status(), Some(error.code.as_str()));
        error
    }

    /// Missing usage counts as zero, not as an estimate: for endpoints not
    /// billed in tokens (images, moderations).
    pub fn without_estimate(&mut self) {
        self.estimate = false;
    }

    pub fn request_id(&self) -> &str {
        &self.outcome.request_id
    }

    /// Marks a failure after the status was sent (a broken or abandoned stream).
    pub fn interrupted(&mut self, error_code: &'static str) {
        self.outcome.error_code = Some(error_code);
    }

    /// An upstream success was relayed: its reported usage (if any) and the
    /// completion text seen, for the estimate.
    pub fn served(&mut self, reported: Option<RawUsage>, completion: Completion) {
        self.served = true;
        self.reported = reported;
        self.completion = CompletionText::Streamed(completion);
    }

    /// A whole upstream reply was relayed: its reported usage (if any), and
    /// the reply and its measure, for the estimate when there is none.
    pub fn served_whole(
        &mut self,
        reported: Option<RawUsage>,
        body: Bytes,
        measure: fn(&[u8], &mut TextMeasure),
    ) {
        self.served = true;
        self.reported = reported;
        if reported.is_none() {
            self.completion = CompletionText::Reply { body, measure };
        }
    }

    /// Counts one reported usage at once, while the request still runs (a
    /// realtime session's `response.done`), on the channel of the current
    /// hold. The first count replaces the hold's reservation; later ones add
    /// to the day. The log row at the end carries the sum. Returns the
    /// tokens counted.
    pub fn count_running(&mut self, reported: RawUsage) -> u64 {
        let usage = Usage::reported(reported);
        let running = self.running.get_or_insert_default();
        running.prompt = running.prompt.saturating_add(usage.prompt);
        running.completion = running.completion.saturating_add(usage.completion);
        running.total = running.total.saturating_add(usage.total);
        if let Some(hold) = self.outcome.hold.as_mut() {
            let now = self.state.clock.now();
            let first = Hold {
                reservation: hold.reservation.take(),
                ..*hold
            };
            first.count(&self.state.counters, usage.total, now);
            self.state.metrics.counted(hold.channel_id, usage.total);
        }
        usage.total
    }

    /// The usage, or what it must be estimated from.
    fn usage(&mut self) -> Settled {
        if let Some(running) = self.running {
            return Settled::Known(running);
        }
        match (self.reported, self.served && self.estimate) {
            (Some(raw), _) => Settled::Known(Usage::reported(raw)),
            (None, true) => Settled::Estimate(Estimate {
                model: self.outcome.model.clone(),
                prompt: std::mem::replace(&mut self.prompt, PromptText::Known(0)),
                completion: std::mem::replace(
                    &mut self.completion,
                    CompletionText::Streamed(Completion::default()),
                ),
            }),
            (None, false) => Settled::Known(Usage::default()),
        }
    }
}

/// A finished request's usage: known now, or to be estimated.
enum Settled {
    Known(Usage),
    Estimate(Estimate),
}

impl Drop for Meter {
    fn drop(&mut self) {
        let usage = self.usage();
        let mut outcome = std::mem::take(&mut self.outcome);
        if self.running.is_some()
            && let Some(hold) = outcome.hold.take()
        {
            // Everything was counted as it came; only an untouched
            // reservation could be left, and there is none after a count.
            hold.release(&self.state.counters);
        }
        outcome.served = self.served;
        outcome.latency = self.started.elapsed();
        match usage {
            Settled::Known(usage) => {
                outcome.usage = usage;
                finish(&self.state, outcome);
            }
            Settled::Estimate(estimate) => finish_estimated(&self.state, outcome, estimate),
        }
    }
}
