//! Request-log rows: batched inserts and filtered, paginated reads.

use rusqlite::{Connection, Row, ToSql, params};

use super::{Error, time};
use crate::model::{ChannelId, LogFilter, RequestLog, TokenId};

/// Inserts a batch of rows in one transaction.
pub fn insert(connection: &mut Connection, rows: &[RequestLog]) -> Result<(), Error> {
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare(
            "INSERT INTO request_logs (time, request_id, token_id, channel_ids, model, \
             upstream_model, endpoint, stream, status, error_code, prompt_tokens, \
             completion_tokens, total_tokens, estimated, latency_ms, ttft_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?;
        for row in rows {
            let channel_ids: Vec<i64> = row.channel_ids.iter().map(|id| id.0).collect();
            let channel_ids = serde_json::to_string(&channel_ids)
                .map_err(|error| Error::Corrupt(format!("encoding channel ids: {error}")))?;
            statement.execute(params![
                time::encode(row.time),
                row.request_id,
                row.token_id.map(|id| id.0),
                channel_ids,
                row.model,
                row.upstream_model,
                row.endpoint,
                row.stream,
                row.status,
                row.error_code,
                saturating_i64(row.prompt_tokens),
                saturating_i64(row.completion_tokens),
                saturating_i64(row.total_tokens),
                row.estimated,
                saturating_i64(row.latency_ms),
                row.ttft_ms.map(saturating_i64),
            ])?;
        }
    }
    transaction.commit()?;
    Ok(())
}

/// One page of rows matching `filter`, newest first, and how many match in all.
pub fn query(connection: &Connection, filter: &LogFilter) -> Result<(Vec<RequestLog>, u64), Error> {
    let mut conditions: Vec<&str> = Vec::new();
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(id) = filter.channel_id {
        conditions
            .push("EXISTS (SELECT 1 FROM json_each(request_logs.channel_ids) WHERE value = ?)");
        values.push(Box::new(id.0));
    }
    if let Some(id) = filter.token_id {
        conditions.push("token_id = ?");
        values.push(Box::new(id.0));
    }
    if let Some(model) = &filter.model {
        conditions.push("model = ?");
        values.push(Box::new(model.clone()));
    }
    if let Some(since) = filter.since {
        conditions.push("time >= ?");
        values.push(Box::new(time::encode(since)));
    }
    if let Some(until) = filter.until {
        conditions.push("time < ?");
        values.push(Box::new(time::encode(until)));
    }
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let parameters: Vec<&dyn ToSql> = values.iter().map(|value| value.as_ref()).collect();
    let total: i64 = connection.query_row(
        &format!("SELECT COUNT(*) FROM request_logs {clause}"),
        parameters.as_slice(),
        |row| row.get(0),
    )?;
    let per_page = i64::from(filter.per_page.max(1));
    let offset = i64::from(filter.page.max(1) - 1) * per_page;
    let mut statement = connection.prepare(&format!(
        "SELECT id, time, request_id, token_id, channel_ids, model, upstream_model, endpoint, \
         stream, status, error_code, prompt_tokens, completion_tokens, total_tokens, estimated, \
         latency_ms, ttft_ms FROM request_logs {clause} ORDER BY time DESC, id DESC \
         LIMIT {per_page} OFFSET {offset}"
    ))?;
    let rows = statement.query_map(parameters.as_slice(), read_row)?;
    let rows: Result<Vec<RequestLog>, Error> = rows.map(|row| row?).collect();
    Ok((rows?, u64::try_from(total).unwrap_or(0)))
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<RequestLog, Error>> {
    let id: i64 = row.get(0)?;
    let time_text: String = row.get(1)?;
    let channel_ids: String = row.get(4)?;
    let count = |index: usize| -> rusqlite::Result<u64> {
        let value: i64 = row.get(index)?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    let ttft: Option<i64> = row.get(16)?;
    let partial = RequestLog {
        id,
        time: chrono::DateTime::<chrono::Utc>::MIN_UTC,
        request_id: row.get(2)?,
        token_id: row.get::<_, Option<i64>>(3)?.map(TokenId),
        channel_ids: Vec::new(),
        model: row.get(5)?,
        upstream_model: row.get(6)?,
        endpoint: row.get(7)?,
        stream: row.get(8)?,
        status: row.get(9)?,
        error_code: row.get(10)?,
        prompt_tokens: count(11)?,
        completion_tokens: count(12)?,
        total_tokens: count(13)?,
        estimated: row.get(14)?,
        latency_ms: count(15)?,
        ttft_ms: ttft.map(|value| u64::try_from(value).unwrap_or(0)),
    };
    Ok((|| {
        let ids: Vec<i64> = serde_json::from_str(&channel_ids)
            .map_err(|error| Error::Corrupt(format!("log {id} channel ids: {error}")))?;
        Ok(RequestLog {
            time: time::decode(&time_text)?,
            channel_ids: ids.into_iter().map(ChannelId).collect(),
            ..partial
        })
    })())
}
