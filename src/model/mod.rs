//! Domain types shared by every layer: channels, API keys, request-log rows
//! and cluster node ids.
//!
//! These are plain data. They know nothing of SQLite, HTTP or routing; the
//! store persists them, the snapshot indexes them and the admin API renders them.

mod channel;
mod log;
mod node;
mod token;

pub use channel::{
    AutoDisabled, Channel, ChannelId, ChannelSpec, ChannelStatus, ChannelType, mask_key,
};
pub use log::{LogFilter, RequestLog};
pub use node::NodeId;
pub use token::{KeyDigest, KeyHash, Token, TokenId, TokenSpec, TokenStatus};
