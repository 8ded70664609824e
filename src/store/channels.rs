//! Channel rows: JSON columns for the list-valued fields, one row per channel.
//!
//! The `keys` column is sealed (`store/secrets.rs`): written through
//! `seal_secret(id, …)` and read through `open_secret(id, …)`, so keys are
//! decrypted only when the store loads channels (for the snapshot or an
//! admin answer), never per request.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::replicated::{SqlValue, TableDump};
use super::secrets::{SecretError, SecretKey, is_sealed};
use super::{Error, time};
use crate::model::{AutoDisabled, Channel, ChannelId, ChannelSpec, ChannelStatus, ChannelType};

const COLUMNS: &str = "id, name, type, base_url, open_secret(id, keys), models, model_mapping, channel_groups, \
                       priority, weight, status, settings, created_at, updated_at, \
                       auto_disabled_reason, auto_disabled_at";

pub fn all(connection: &Connection) -> Result<Vec<Channel>, Error> {
    let mut statement =
        connection.prepare(&format!("SELECT {COLUMNS} FROM channels ORDER BY id"))?;
    let rows = statement.query_map([], read_row)?;
    rows.map(|row| row?).collect()
}

pub fn get(connection: &Connection, id: ChannelId) -> Result<Channel, Error> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM channels WHERE id = ?1"),
            [id.0],
            read_row,
        )
        .optional()?
        .ok_or(Error::NotFound("channel"))?
}

pub fn insert(
    connection: &Connection,
    spec: &ChannelSpec,
    at: DateTime<Utc>,
) -> Result<Channel, Error> {
    let columns = Encoded::of(spec)?;
    let stamp = time::encode(at);
    // The sealed value is bound to the id, which exists only after the
    // insert: the row starts with an empty `keys` and is sealed before the
    // transaction commits, so no plain key is ever written.
    connection.execute(
        "INSERT INTO channels (name, type, base_url, keys, models, model_mapping, channel_groups, \
         priority, weight, status, settings, created_at, updated_at) \
         VALUES (?1, ?2, ?3, '', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
        params![
            spec.name,
            spec.kind.as_str(),
            spec.base_url,
            columns.models,
            columns.model_mapping,
            columns.groups,
            spec.priority,
            spec.weight,
            spec.status.as_str(),
            columns.settings,
            stamp,
        ],
    )?;
    let id = connection.last_insert_rowid();
    connection.execute(
        "UPDATE channels SET keys = seal_secret(id, ?2) WHERE id = ?1",
        params![id, columns.keys],
    )?;
    get(connection, ChannelId(id))
}

pub fn update(
    connection: &Connection,
    id: ChannelId,
    spec: &ChannelSpec,
    at: DateTime<Utc>,
) -> Result<Channel, Error> {
    let columns = Encoded::of(spec)?;
    let changed = connection.execute(
        "UPDATE channels SET name = ?2, type = ?3, base_url = ?4, keys = seal_secret(?1, ?5), \
         models = ?6, \
         model_mapping = ?7, channel_groups = ?8, priority = ?9, weight = ?10, status = ?11, \
         settings = ?12, updated_at = ?13, \
         auto_disabled_reason = CASE WHEN ?11 = 'auto_disabled' THEN auto_disabled_reason END, \
         auto_disabled_at = CASE WHEN ?11 = 'auto_disabled' THEN auto_disabled_at END \
         WHERE id = ?1",
        params![
            id.0,
            spec.name,
            spec.kind.as_str(),
            spec.base_url,
            columns.keys,
            columns.models,
            columns.model_mapping,
            columns.groups,
            spec.priority,
            spec.weight,
            spec.status.as_str(),
            columns.settings,
            time::encode(at),
        ],
    )?;
    if changed == 0 {
        return Err(Error::NotFound("channel"));
    }
    get(connection, id)
}

/// Sets an enabled channel to `auto_disabled` with `reason`. A channel
/// that is no longer enabled, or whose settings forbid automatic disabling,
/// is left as it is: the command was decided on an older view.
pub fn auto_disable(
    connection: &Connection,
    id: ChannelId,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Channel, Error> {
    let channel = get(connection, id)?;
    if !channel.is_enabled() || !channel.spec.allows_auto_disable() {
        return Ok(channel);
    }
    connection.execute(
        "UPDATE channels SET status = 'auto_disabled', auto_disabled_reason = ?2, \
         auto_disabled_at = ?3, updated_at = ?3 WHERE id = ?1",
        params![id.0, reason, time::encode(at)],
    )?;
    get(connection, id)
}

/// Enables an `auto_disabled` channel again and forgets why it was disabled.
/// Any other status (an admin's decision) is left as it is.
pub fn reenable(
    connection: &Connection,
    id: ChannelId,
    at: DateTime<Utc>,
) -> Result<Channel, Error> {
    let channel = get(connection, id)?;
    if channel.spec.status != ChannelStatus::AutoDisabled {
        return Ok(channel);
    }
    connection.execute(
        "UPDATE channels SET status = 'enabled', auto_disabled_reason = NULL, \
         auto_disabled_at = NULL, updated_at = ?2 WHERE id = ?1",
        params![id.0, time::encode(at)],
    )?;
    get(connection, id)
}

pub fn delete(connection: &Connection, id: ChannelId) -> Result<(), Error> {
    match connection.execute("DELETE FROM channels WHERE id = ?1", [id.0])? {
        0 => Err(Error::NotFound("channel")),
        _ => Ok(()),
    }
}

/// Checks at start-up that every channel's keys are sealed and open with
/// `key`, so a wrong or replaced key file stops the start with a clear
/// error instead of surfacing later.
pub fn check_sealed(connection: &Connection, key: &SecretKey) -> Result<(), Error> {
    let mut statement = connection.prepare("SELECT id, keys FROM channels ORDER BY id")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    for row in rows {
        let (id, keys): (i64, String) = row?;
        key.open(id, &keys)?;
    }
    Ok(())
}

/// Seals every `keys` value still in clear: channel rows a snapshot
/// install just wrote (see [`reveal_keys`]). Idempotent.
pub fn seal_plain_keys(connection: &Connection) -> Result<(), Error> {
    connection.execute(
        "UPDATE channels SET keys = seal_secret(id, keys) WHERE keys NOT LIKE 'enc:%'",
        [],
    )?;
    Ok(())
}

/// Replaces the sealed `keys` of a `channels` dump with the plain JSON, so
/// a raft snapshot can be installed by nodes that hold other key files;
/// the installing node seals them again ([`seal_plain_keys`]). The
/// snapshot itself therefore carries keys in clear, as it did before
/// sealing existed (see ARCHITECTURE.md, `src/cluster/`).
pub fn reveal_keys(connection: &Connection, tables: &mut [TableDump]) -> Result<(), Error> {
    convert_keys(connection, tables, "SELECT open_secret(?1, ?2)", true)
}

/// The opposite of [`reveal_keys`], in memory before the rows are inserted
/// (a snapshot install), so a plain key never reaches a database page or
/// the WAL.
pub fn seal_dump_keys(connection: &Connection, tables: &mut [TableDump]) -> Result<(), Error> {
    convert_keys(connection, tables, "SELECT seal_secret(?1, ?2)", false)
}

/// Runs `sql` (one of the two sealing functions) over every channel row's
/// keys; `sealed` says which form the rows must be in first.
fn convert_keys(
    connection: &Connection,
    tables: &mut [TableDump],
    sql: &str,
    sealed: bool,
) -> Result<(), Error> {
    for dump in tables.iter_mut().filter(|dump| dump.table == "channels") {
        let position = |name: &str| dump.columns.iter().position(|column| column == name);
        let (Some(id_at), Some(keys_at)) = (position("id"), position("keys")) else {
            return Err(Error::Corrupt("channels dump without id or keys".into()));
        };
        for row in &mut dump.rows {
            let (id, keys) = match (row.get(id_at), row.get(keys_at)) {
                (Some(SqlValue::Integer(id)), Some(SqlValue::Text(keys))) => (*id, keys.clone()),
                _ => return Err(Error::Corrupt("channels dump row".into())),
            };
            if is_sealed(&keys) != sealed {
                if sealed {
                    return Err(SecretError::NotSealed { channel: id }.into());
                }
                // Already sealed (cannot happen for a snapshot's plain rows):
                // leave it for `check_sealed` to judge.
                continue;
            }
            let converted: String =
                connection.query_row(sql, params![id, keys], |row| row.get(0))?;
            row[keys_at] = SqlValue::Text(converted);
        }
    }
    Ok(())
}

/// The JSON-encoded columns of a spec.
struct Encoded {
    keys: String,
    models: String,
    model_mapping: String,
    groups: String,
    settings: String,
}

impl Encoded {
    fn of(spec: &ChannelSpec) -> Result<Encoded, Error> {
        let encode = |value: serde_json::Result<String>| {
            value.map_err(|error| Error::Corrupt(format!("encoding channel: {error}")))
        };
        Ok(Encoded {
            keys: encode(serde_json::to_string(&spec.keys))?,
            models: encode(serde_json::to_string(&spec.models))?,
            model_mapping: encode(serde_json::to_string(&spec.model_mapping))?,
            groups: encode(serde_json::to_string(&spec.groups))?,
            settings: encode(serde_json::to_string(&spec.settings))?,
        })
    }
}

/// Reads one row. The outer `rusqlite::Result` is for column access; the
/// inner one for decoding our own encodings.
fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<Channel, Error>> {
    let id: i64 = row.get(0)?;
    let name: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let base_url: String = row.get(3)?;
    let keys: String = row.get(4)?;
    let models: String = row.get(5)?;
    let model_mapping: String = row.get(6)?;
    let groups: String = row.get(7)?;
    let priority: i64 = row.get(8)?;
    let weight: u32 = row.get(9)?;
    let status: String = row.get(10)?;
    let settings: String = row.get(11)?;
    let created_at: String = row.get(12)?;
    let updated_at: String = row.get(13)?;
    let auto_disabled_reason: Option<String> = row.get(14)?;
    let auto_disabled_at: Option<String> = row.get(15)?;
    Ok((|| {
        let kind = ChannelType::parse(&kind)
            .ok_or_else(|| Error::Corrupt(format!("channel {id} type {kind:?}")))?;
        let status = ChannelStatus::parse(&status)
            .ok_or_else(|| Error::Corrupt(format!("channel {id} status {status:?}")))?;
        let auto_disabled = match (auto_disabled_reason, auto_disabled_at) {
            (Some(reason), Some(at)) => Some(AutoDisabled {
                reason,
                at: time::decode(&at)?,
            }),
            _ => None,
        };
        Ok(Channel {
            id: ChannelId(id),
            spec: ChannelSpec {
                name,
                kind,
                base_url,
                keys: decode(id, "keys", &keys)?,
                models: decode(id, "models", &models)?,
                model_mapping: decode(id, "model_mapping", &model_mapping)?,
                groups: decode(id, "groups", &groups)?,
                priority,
                weight,
                status,
                settings: decode(id, "settings", &settings)?,
            },
            created_at: time::decode(&created_at)?,
            updated_at: time::decode(&updated_at)?,
            auto_disabled,
        })
    })())
}

fn decode<T: serde::de::DeserializeOwned>(id: i64, what: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text)
        .map_err(|error| Error::Corrupt(format!("channel {id} {what}: {error}")))
}
