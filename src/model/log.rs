//! One row per relayed request, and the filter used to read them back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ChannelId, TokenId};

/// What the gateway records about each relayed request. Written off the
/// request path, in batches, by `logsink`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestLog {
    /// Set by the store; 0 before the row is written.
    pub id: i64,
    pub time: DateTime<Utc>,
    pub request_id: String,
    #[schema(value_type = Option<i64>)]
    pub token_id: Option<TokenId>,
    /// Every channel tried, in order; the last one served (or failed) the request.
    #[schema(value_type = Vec<i64>)]
    pub channel_ids: Vec<ChannelId>,
    pub model: String,
    pub upstream_model: Option<String>,
    pub endpoint: String,
    pub stream: bool,
    /// The HTTP status returned to the client.
    pub status: u16,
    pub error_code: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// The counts are the gateway's estimate: the upstream reported no usage.
    pub estimated: bool,
    pub latency_ms: u64,
    /// Time to first token, for streams.
    pub ttft_ms: Option<u64>,
}

/// A query over request logs. Pages count from 1. Serializable, so a node
/// can hand it to the others (`cluster::peer_query`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogFilter {
    pub channel_id: Option<ChannelId>,
    pub token_id: Option<TokenId>,
    pub model: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub page: u32,
    pub per_page: u32,
}
