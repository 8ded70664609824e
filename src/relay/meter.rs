//! The one place a finished relay request is accounted for: its request-log
//! row and its `tracing` event. The daily-limit issue adds token counting to
//! [`finish`], and nowhere else.
//!
//! Endpoints do not call [`finish`] directly. They hold a [`Meter`], tell it
//! what happened, and let it record on drop. Drop is what makes a client
//! disconnect (the handler future or the response stream is dropped
//! mid-way) still produce a log row.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::Utc;

use super::request_id::RequestId;
use super::usage::{RawUsage, TextMeasure, Usage};
use crate::AppState;
use crate::error::{ApiError, OpenAiError};
use crate::model::{ChannelId, RequestLog, TokenId};

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
}

/// Records a finished request: queues its log row and emits its event. Keys
/// never appear in either.
pub fn finish(state: &AppState, outcome: Outcome) {
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
        time: Utc::now(),
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

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight; records its [`Outcome`] through [`finish`] when dropped.
pub struct Meter {
    state: AppState,
    started: Instant,
    outcome: Outcome,
    /// Estimated prompt tokens, used only if the upstream reports no usage.
    prompt_estimate: u64,
    reported: Option<RawUsage>,
    completion: TextMeasure,
    /// Whether an upstream success reached the client, so that missing
    /// usage must be estimated rather than counted as zero.
    served: bool,
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
            },
            prompt_estimate: 0,
            reported: None,
            completion: TextMeasure::default(),
            served: false,
        }
    }

    /// The parsed request: its model, stream flag and estimated prompt size.
    pub fn request(&mut self, model: &str, stream: bool, prompt_estimate: u64) {
        self.outcome.model = model.to_string();
        self.outcome.stream = stream;
        self.prompt_estimate = prompt_estimate;
    }

    /// One more channel tried, under its upstream model name.
    pub fn tried(&mut self, channel: ChannelId, upstream_model: &str) {
        self.outcome.channel_ids.push(channel);
        if self.outcome.upstream_model.as_deref() != Some(upstream_model) {
            self.outcome.upstream_model = Some(upstream_model.to_string());
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
        self.respond(error.status(), Some(error.code.as_str()));
        error.openai()
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
    pub fn served(&mut self, reported: Option<RawUsage>, completion: TextMeasure) {
        self.served = true;
        self.reported = reported;
        self.completion = completion;
    }

    fn usage(&self) -> Usage {
        match (self.reported, self.served) {
            (Some(raw), _) => Usage::reported(raw),
            (None, true) => Usage::estimated(self.prompt_estimate, &self.completion),
            (None, false) => Usage::default(),
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let mut outcome = std::mem::take(&mut self.outcome);
        outcome.usage = self.usage();
        outcome.latency = self.started.elapsed();
        finish(&self.state, outcome);
    }
}
