//! API key rows. Only the key's hash and display prefix are stored.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Error, time};
use crate::model::{ChannelId, KeyHash, Token, TokenId, TokenSpec, TokenStatus};

const COLUMNS: &str = "id, name, key_hash, key_prefix, status, expires_at, group_name, models, \
                       channel_id, created_at, last_used_at";

pub fn all(connection: &Connection) -> Result<Vec<Token>, Error> {
    let mut statement = connection.prepare(&format!("SELECT {COLUMNS} FROM tokens ORDER BY id"))?;
    let rows = statement.query_map([], read_row)?;
    rows.map(|row| row?).collect()
}

pub fn get(connection: &Connection, id: TokenId) -> Result<Token, Error> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"),
            [id.0],
            read_row,
        )
        .optional()?
        .ok_or(Error::NotFound("token"))?
}

pub fn insert(
    connection: &Connection,
    key_hash: &KeyHash,
    key_prefix: &str,
    spec: &TokenSpec,
    at: DateTime<Utc>,
) -> Result<Token, Error> {
    connection.execute(
        "INSERT INTO tokens (name, key_hash, key_prefix, status, expires_at, group_name, models, \
         channel_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            spec.name,
            key_hash.0,
            key_prefix,
            spec.status.as_str(),
            spec.expires_at.map(time::encode),
            spec.group,
            encode_models(spec)?,
            spec.channel_id.map(|id| id.0),
            time::encode(at),
        ],
    )?;
    get(connection, TokenId(connection.last_insert_rowid()))
}

pub fn update(connection: &Connection, id: TokenId, spec: &TokenSpec) -> Result<Token, Error> {
    let changed = connection.execute(
        "UPDATE tokens SET name = ?2, status = ?3, expires_at = ?4, group_name = ?5, models = ?6, \
         channel_id = ?7 WHERE id = ?1",
        params![
            id.0,
            spec.name,
            spec.status.as_str(),
            spec.expires_at.map(time::encode),
            spec.group,
            encode_models(spec)?,
            spec.channel_id.map(|id| id.0),
        ],
    )?;
    if changed == 0 {
        return Err(Error::NotFound("token"));
    }
    get(connection, id)
}

pub fn delete(connection: &Connection, id: TokenId) -> Result<(), Error> {
    match connection.execute("DELETE FROM tokens WHERE id = ?1", [id.0])? {
        0 => Err(Error::NotFound("token")),
        _ => Ok(()),
    }
}

/// Moves `last_used_at` forward (never back) for each key, in one transaction.
pub fn touch(connection: &mut Connection, used: &[(TokenId, DateTime<Utc>)]) -> Result<(), Error> {
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare(
            "UPDATE tokens SET last_used_at = ?2 \
             WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        )?;
        for (id, at) in used {
            statement.execute(params![id.0, time::encode(*at)])?;
        }
    }
    transaction.commit()?;
    Ok(())
}

fn encode_models(spec: &TokenSpec) -> Result<Option<String>, Error> {
    spec.models
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|error| Error::Corrupt(format!("encoding token models: {error}")))
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<Token, Error>> {
    let id: i64 = row.get(0)?;
    let name: String = row.get(1)?;
    let key_hash: String = row.get(2)?;
    let key_prefix: String = row.get(3)?;
    let status: String = row.get(4)?;
    let expires_at: Option<String> = row.get(5)?;
    let group: String = row.get(6)?;
    let models: Option<String> = row.get(7)?;
    let channel_id: Option<i64> = row.get(8)?;
    let created_at: String = row.get(9)?;
    let last_used_at: Option<String> = row.get(10)?;
    Ok((|| {
        let status = TokenStatus::parse(&status)
            .ok_or_else(|| Error::Corrupt(format!("token {id} status {status:?}")))?;
        let models = models
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|error| Error::Corrupt(format!("token {id} models: {error}")))?;
        Ok(Token {
            id: TokenId(id),
            key_hash: KeyHash(key_hash),
            key_prefix,
            spec: TokenSpec {
                name,
                status,
                expires_at: time::decode_optional(expires_at)?,
                group,
                models,
                channel_id: channel_id.map(ChannelId),
            },
            created_at: time::decode(&created_at)?,
            last_used_at: time::decode_optional(last_used_at)?,
        })
    })())
}
