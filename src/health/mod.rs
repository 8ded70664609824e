//! Channel health: disabling channels whose upstream refuses their key or
//! reports an exhausted quota, testing channels, and bringing auto-disabled
//! channels back once a test succeeds.
//!
//! - This file: the auto-disable rules, [`Monitor::report`] (the relay's
//!   one hook), and [`run_disabler`]. The hook never blocks the request
//!   path: it decides from the snapshot and queues the decision; the
//!   disabler task proposes the `Command`.
//! - `probe`: one minimal real request to a channel (the channel test), and
//!   the upstream's model list, over the upstream client alone.
//! - `periodic`: the background task that tests `auto_disabled` channels.
//!
//! Health sits below the state: it is handed what it uses (a snapshot, the
//! upstream client, a [`Proposer`] for its commands), never the state
//! itself. Nothing here writes to the store. Tests and model lists never
//! pass through the relay's meter, so they are not logged as requests and
//! never count toward daily limits.

pub mod periodic;
pub mod probe;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use axum::http::StatusCode;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::command::{ConfigCommand, Proposer};
use crate::model::ChannelId;
use crate::snapshot::Snapshot;
use crate::upstream::client::UpstreamClient;

/// What the health tasks and the channel-test endpoints work through: the
/// live snapshot and upstream client, the monitor, a clock and a proposer.
/// The server's state implements it; health never sees the state itself.
pub trait Host: Proposer + Send + Sync {
    fn snapshot(&self) -> Arc<Snapshot>;
    fn upstream(&self) -> Arc<UpstreamClient>;
    fn monitor(&self) -> &Monitor;
    fn now(&self) -> DateTime<Utc>;
}

/// How much of an error body is searched for a rule: error messages come first.
const SEARCHED_BYTES: usize = 8 * 1024;

/// The compiled rules, and which channels have a disable on its way.
pub struct Monitor {
    /// Decisions on their way to [`run_disabler`].
    queue: mpsc::UnboundedSender<Disable>,
    /// The other end, until the server's disabler takes it.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Disable>>>,
    /// Lower-cased once, so matching is a plain substring search. Swapped
    /// whole when an admin changes the rules (`PATCH /api/settings`).
    rules: ArcSwap<Vec<String>>,
    /// Channels whose `AutoDisableChannel` is being applied: a burst of
    /// failures proposes the command once.
    pending: Mutex<HashSet<ChannelId>>,
}

impl Monitor {
    pub fn new(rules: &[String]) -> Monitor {
        let (queue, receiver) = mpsc::unbounded_channel();
        Monitor {
            queue,
            receiver: Mutex::new(Some(receiver)),
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

/// A decision to disable a channel, for [`run_disabler`].
#[derive(Debug)]
pub struct Disable {
    pub channel_id: ChannelId,
    pub reason: String,
}

impl Monitor {
    /// The relay's hook, for every failing upstream status and its body: a
    /// 401, or a body matching a rule, on an enabled channel that allows
    /// it, queues one [`Disable`] per burst. Never blocks.
    pub fn report(
        &self,
        snapshot: &Snapshot,
        channel_id: ChannelId,
        status: StatusCode,
        body: &[u8],
    ) {
        let Some(reason) = self.reason(status, body) else {
            return;
        };
        let Some(entry) = snapshot.channel(channel_id) else {
            return;
        };
        let spec = &entry.channel.spec;
        if !entry.channel.is_enabled() || !spec.allows_auto_disable() {
            return;
        }
        if !self.begin(channel_id) {
            return;
        }
        tracing::warn!(channel = channel_id.0, %reason, "auto-disabling the channel");
        if self.queue.send(Disable { channel_id, reason }).is_err() {
            // No disabler runs (a state without a server): nothing is pending.
            self.end(channel_id);
        }
    }

    /// The queue of decisions, for the one disabler task; `None` once taken.
    pub fn take_queue(&self) -> Option<mpsc::UnboundedReceiver<Disable>> {
        self.receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Proposes each queued [`Disable`] as `ConfigCommand::AutoDisableChannel`, one
/// at a time, until `stop`; `disabled` is told of each one applied.
pub async fn run_disabler(
    monitor: Arc<Monitor>,
    mut queue: mpsc::UnboundedReceiver<Disable>,
    proposer: Arc<dyn Proposer>,
    clock: Arc<dyn Clock>,
    disabled: impl Fn(ChannelId) + Send,
    stop: CancellationToken,
) {
    loop {
        let Disable { channel_id, reason } = tokio::select! {
            next = queue.recv() => match next {
                Some(disable) => disable,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        let command = ConfigCommand::AutoDisableChannel {
            id: channel_id,
            reason,
            at: clock.now(),
        };
        match proposer.propose(command.into()).await {
            Ok(_) => disabled(channel_id),
            Err(error) => {
                tracing::error!(channel = channel_id.0, %error, "auto-disabling the channel failed")
            }
        }
        monitor.end(channel_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 401 always disables; other statuses only when a rule matches the
    /// body, case-insensitively; an empty rule list matches nothing.
    #[test]
    fn rules_match_case_insensitive_substrings() {
        let monitor = Monitor::new(&crate::config::default_auto_disable_rules());
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
