//! Channel health: disabling channels whose upstream refuses their key or
//! reports an exhausted quota, testing channels, and bringing auto-disabled
//! channels back once a test succeeds.
//!
//! - This file: the auto-disable rules and [`report_failure`], the relay's
//!   one hook. It never blocks the request path: it decides from the
//!   snapshot and hands the state change (a `Command`) to a spawned task.
//! - `probe`: one minimal real request to a channel (the channel test), and
//!   the upstream's model list.
//! - `periodic`: the background task that tests `auto_disabled` channels.
//!
//! Every state change goes through `AppState::apply`; nothing here writes to
//! the store. Tests and model lists never pass through the relay's meter, so
//! they are not logged as requests and never count toward daily limits.

pub mod periodic;
pub mod probe;

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use arc_swap::ArcSwap;
use axum::http::StatusCode;

use crate::AppState;
use crate::command::Command;
use crate::model::ChannelId;

/// The rules a fresh install starts with: messages and codes that OpenAI,
/// Anthropic and DeepSeek put in the error body when an account's quota or
/// credit is exhausted, which no retry will fix.
pub const DEFAULT_RULES: [&str; 5] = [
    // OpenAI 429: "You exceeded your current quota, please check your plan…"
    "You exceeded your current quota",
    // OpenAI's error code for the same, and for a hard billing limit.
    "insufficient_quota",
    "billing_hard_limit_reached",
    // Anthropic 400: "Your credit balance is too low to access the Anthropic API."
    "credit balance is too low",
    // DeepSeek 402.
    "Insufficient Balance",
];

/// How much of an error body is searched for a rule: error messages come first.
const SEARCHED_BYTES: usize = 8 * 1024;

/// [`DEFAULT_RULES`] as the configuration's default.
pub fn default_rules() -> Vec<String> {
    DEFAULT_RULES.iter().map(|rule| rule.to_string()).collect()
}

/// The compiled rules, and which channels have a disable on its way.
pub struct Monitor {
    /// Lower-cased once, so matching is a plain substring search. Swapped
    /// whole when an admin changes the rules (`PATCH /api/settings`).
    rules: ArcSwap<Vec<String>>,
    /// Channels whose `AutoDisableChannel` is being applied: a burst of
    /// failures proposes the command once.
    pending: Mutex<HashSet<ChannelId>>,
}

impl Monitor {
    pub fn new(rules: &[String]) -> Monitor {
        Monitor {
            rules: ArcSwap::from_pointee(compile(rules)),
            pending: Mutex::new(HashSet::new()),
        }
    }

    /// Replaces the rules; failures judged from now on use the new ones.
    pub fn set_rules(&self, rules: &[String]) {
        self.rules.store(std::sync::Arc::new(compile(rules)));
    }

    /// Why an upstream answer with `status` and `body` disables the channel,
    /// or `None` if it does not: a 401, or a body matching a rule.
    pub fn reason(&self, status: StatusCode, body: &[u8]) -> Option<String> {
        if status == StatusCode::UNAUTHORIZED {
            return Some(format!("upstream answered {status}"));
        }
        let searched = &body[..body.len().min(SEARCHED_BYTES)];
        let text = String::from_utf8_lossy(searched).to_lowercase();
        self.rules
            .load()
            .iter()
            .find(|rule| text.contains(rule.as_str()))
            .map(|rule| format!("upstream error ({status}) matched the rule \"{rule}\""))
    }

    /// Marks `channel_id` as pending; false if it already was.
    fn begin(&self, channel_id: ChannelId) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(channel_id)
    }

    fn end(&self, channel_id: ChannelId) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&channel_id);
    }
}

fn compile(rules: &[String]) -> Vec<String> {
    rules
        .iter()
        .map(|rule| rule.trim().to_lowercase())
        .filter(|rule| !rule.is_empty())
        .collect()
}

/// The relay's hook: an upstream attempt on `channel_id` failed with `status`
/// and `body`. If that disables the channel, the change is applied on a
/// spawned task; the caller goes on (usually to retry elsewhere) at once.
pub fn report_failure(state: &AppState, channel_id: ChannelId, status: StatusCode, body: &[u8]) {
    let Some(reason) = state.health.reason(status, body) else {
        return;
    };
    let snapshot = state.snapshot();
    let Some(entry) = snapshot.channel(channel_id) else {
        return;
    };
    let spec = &entry.channel.spec;
    if !entry.channel.is_enabled() || !spec.allows_auto_disable() {
        return;
    }
    if !state.health.begin(channel_id) {
        return;
    }
    tracing::warn!(channel = channel_id.0, %reason, "auto-disabling the channel");
    let state = state.clone();
    tokio::spawn(async move {
        let command = Command::AutoDisableChannel {
            id: channel_id,
            reason,
            at: state.clock.now(),
        };
        match state.apply(command).await {
            Ok(_) => state.metrics.auto_disabled(channel_id),
            Err(error) => {
                tracing::error!(channel = channel_id.0, %error, "auto-disabling the channel failed")
            }
        }
        // The snapshot now shows the channel disabled, so later failures
        // stop at the status check above.
        state.health.end(channel_id);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 401 always disables; other statuses only when a rule matches the
    /// body, case-insensitively; an empty rule list matches nothing.
    #[test]
    fn rules_match_case_insensitive_substrings() {
        let monitor = Monitor::new(&default_rules());
        let quota = br#"{"error":{"message":"You exceeded your current QUOTA, please check your plan","type":"insufficient_quota"}}"#;
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
        let cases: [(u16, &[u8], Option<&str>); 6] = [
            (401, b"", Some("upstream answered 401 Unauthorized")),
            (429, quota, Some("\"you exceeded your current quota\"")),
            (400, anthropic, Some("\"credit balance is too low\"")),
            (
                402,
                b"Insufficient Balance",
                Some("\"insufficient balance\""),
            ),
            (429, br#"{"error":{"message":"Rate limit reached"}}"#, None),
            (500, b"", None),
        ];
        for (code, body, expected) in cases {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            let reason = monitor.reason(status, body);
            match expected {
                None => assert_eq!(reason, None, "{code}"),
                Some(part) => assert!(
                    reason.as_deref().is_some_and(|text| text.contains(part)),
                    "{code}: {reason:?}"
                ),
            }
        }
        let none = Monitor::new(&[" ".to_string()]);
        assert_eq!(none.reason(StatusCode::TOO_MANY_REQUESTS, quota), None);
        assert!(none.reason(StatusCode::UNAUTHORIZED, b"").is_some());
    }

    /// Only the first [`SEARCHED_BYTES`] of a body are searched.
    #[test]
    fn long_bodies_are_searched_only_at_the_start() {
        let monitor = Monitor::new(&["needle".to_string()]);
        let mut body = vec![b' '; SEARCHED_BYTES];
        body.extend_from_slice(b"needle");
        assert_eq!(monitor.reason(StatusCode::FORBIDDEN, &body), None);
        assert!(monitor.reason(StatusCode::FORBIDDEN, b"a needle").is_some());
    }

    /// A channel is pending once until its disable is applied.
    #[test]
    fn a_burst_is_debounced() {
        let monitor = Monitor::new(&[]);
        assert!(monitor.begin(ChannelId(1)));
        assert!(!monitor.begin(ChannelId(1)));
        assert!(monitor.begin(ChannelId(2)));
        monitor.end(ChannelId(1));
        assert!(monitor.begin(ChannelId(1)));
    }
}
