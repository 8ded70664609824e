//! An OpenAI chat completions request rewritten as an Anthropic Messages
//! request, so an `anthropic` channel can serve an OpenAI client.
//!
//! What maps:
//! - `system` and `developer` messages, wherever they stand, become the
//!   top-level `system` (a string for one, text blocks for several);
//! - `user` and `assistant` turns keep their order; text parts become text
//!   blocks, `image_url` parts image blocks (data URLs as base64, others as
//!   URL sources), `file` parts with a data URL document blocks;
//! - assistant `tool_calls` (and the legacy `function_call`) become
//!   `tool_use` blocks, and `tool` (and `function`) messages become
//!   `tool_result` blocks in a user turn; adjacent turns of one role are
//!   merged, so parallel tool results share one user turn as Anthropic wants;
//! - `tools`/`functions` become `tools` with `input_schema`, `tool_choice`/
//!   `function_call` become `tool_choice`, `parallel_tool_calls: false`
//!   becomes `disable_parallel_tool_use`;
//! - `max_completion_tokens`, else `max_tokens`, else [`DEFAULT_MAX_TOKENS`]
//!   (Anthropic requires one); `temperature` (capped at Anthropic's 1.0),
//!   `top_p`, `stop` as `stop_sequences`, `stream`, `user` as
//!   `metadata.user_id`.
//!
//! Everything else (`n`, penalties, `logit_bias`, `response_format`, ...) has
//! no Anthropic counterpart and is dropped. Content the Messages API cannot
//! carry is refused with a 400 naming the field, never silently lost.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::i18n::Message;

/// The `max_tokens` sent when the client set no completion budget.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The Anthropic request for the OpenAI chat request `openai`, addressed to
/// `model` (the channel's upstream name).
pub fn request(openai: &Map<String, Value>, model: &str) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let (system, messages) = messages(openai)?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|field| openai.get(*field).and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max_tokens));
    if let Some(temperature) = openai.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(temperature.clamp(0.0, 1.0)));
    }
    if let Some(top_p) = openai.get("top_p").filter(|value| value.is_number()) {
        out.insert("top_p".into(), top_p.clone());
    }
    match openai.get("stop") {
        Some(Value::String(stop)) => {
            out.insert("stop_sequences".into(), json!([stop]));
        }
        Some(Value::Array(stops)) if !stops.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(stops.clone()));
        }
        _ => {}
    }
    if openai.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = openai.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    tools(openai, &mut out)?;
    Ok(out)
}

/// The `system` value and the conversation.
fn messages(openai: &Map<String, Value>) -> Result<(Option<Value>, Vec<Value>), ApiError> {
    let Some(Value::Array(list)) = openai
        .get("messages")
        .filter(|list| list.as_array().is_some_and(|list| !list.is_empty()))
    else {
        return Err(ApiError::invalid("messages", Message::MessagesRequired));
    };
    let mut system: Vec<Value> = Vec::new();
    let mut turns = Turns::default();
    for (index, message) in list.iter().enumerate() {
        let at = |suffix: &str| format!("messages[{index}]{suffix}");
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" => system.extend(text_blocks(message.get("content"), &at)?),
            "user" => turns.push("user", user_blocks(message.get("content"), &at)?),
            "assistant" => {
                let blocks = assistant_blocks(message, &mut turns.legacy_ids, &at)?;
                turns.push("assistant", blocks);
            }
            "tool" => {
                let id = message.get("tool_call_id").and_then(Value::as_str);
                let id = id.ok_or_else(|| unsupported(at(".tool_call_id")))?;
                turns.push("user", vec![tool_result(id, message.get("content"), &at)?]);
            }
            "function" => {
                let name = message.get("name").and_then(Value::as_str).unwrap_or("");
                let id = turns.legacy_ids.result_id(name);
                turns.push("user", vec![tool_result(&id, message.get("content"), &at)?]);
            }
            _ => return Err(unsupported(at(".role"))),
        }
    }
    let system = match system.as_slice() {
        [] => None,
        [only] => only.get("text").cloned(),
        _ => Some(Value::Array(system)),
    };
    Ok((system, turns.messages))
}

/// The conversation being built: adjacent turns of one role are merged.
#[derive(Default)]
struct Turns {
    messages: Vec<Value>,
    legacy_ids: LegacyIds,
}

impl Turns {
    fn push(&mut self, role: &str, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        if let Some(last) = self.messages.last_mut()
            && last.get("role").and_then(Value::as_str) == Some(role)
            && let Some(Value::Array(content)) = last.get_mut("content")
        {
            content.extend(blocks);
            return;
        }
        self.messages.push(json!({"role": role, "content": blocks}));
    }
}

/// Ids for the legacy `function_call`/`function` pair, which has none: the
/// call and its result are matched by function name.
#[derive(Default)]
struct LegacyIds {
    issued: usize,
    open: Vec<(String, String)>,
}

impl LegacyIds {
    fn call_id(&mut self, name: &str) -> String {
        self.issued += 1;
        let id = format!("toolu_legacy_{}", self.issued);
        self.open.push((name.to_string(), id.clone()));
        id
    }

    fn result_id(&mut self, name: &str) -> String {
        match self.open.iter().position(|(open, _)| open == name) {
            Some(position) => self.open.remove(position).1,
            None => format!("toolu_legacy_{name}"),
        }
    }
}

/// Text blocks of a system message (a string or text parts).
fn text_blocks(
    content: Option<&Value>,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<Value>, ApiError> {
    match content {
        Some(Value::String(text)) if text.is_empty() => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![json!({"type": "text", "text": text})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .filter_map(
                |(index, part)| match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = part.get("text").and_then(Value::as_str).unwrap_or("");
                        (!text.is_empty()).then(|| Ok(json!({"type": "text", "text": text})))
                    }
                    _ => Some(Err(unsupported(at(&format!(".content[{index}]"))))),
                },
            )
            .collect(),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => Err(unsupported(at(".content"))),
    }
}

/// Blocks of a user message: text, images and documents.
fn user_blocks(
    content: Option<&Value>,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<Value>, ApiError> {
    let Some(Value::Array(parts)) = content else {
        return text_blocks(content, at);
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let field = at(&format!(".content[{index}]"));
        let block = match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part.get("text").and_then(Value::as_str).unwrap_or("");
                if text.is_empty() {
                    continue;
                }
                json!({"type": "text", "text": text})
            }
            Some("image_url") => {
                let url = part.pointer("/image_url/url").and_then(Value::as_str);
                let url = url.ok_or_else(|| unsupported(field.clone()))?;
                json!({"type": "image", "source": source(url, &field)?})
            }
            Some("file") => {
                let data = part.pointer("/file/file_data").and_then(Value::as_str);
                let data = data.ok_or_else(|| unsupported(field.clone()))?;
                json!({"type": "document", "source": source(data, &field)?})
            }
            _ => return Err(unsupported(field)),
        };
        blocks.push(block);
    }
    Ok(blocks)
}

/// An image or document source: base64 for a data URL, else a URL source.
fn source(url: &str, field: &str) -> Result<Value, ApiError> {
    let Some(data_url) = url.strip_prefix("data:") else {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(json!({"type": "url", "url": url}));
        }
        return Err(unsupported(field.to_string()));
    };
    let (header, data) = data_url
        .split_once(',')
        .ok_or_else(|| unsupported(field.to_string()))?;
    let media_type = header
        .strip_suffix(";base64")
        .filter(|media_type| !media_type.is_empty())
        .ok_or_else(|| unsupported(field.to_string()))?;
    Ok(json!({"type": "base64", "media_type": media_type, "data": data}))
}

/// Blocks of an assistant message: its text, then its tool calls.
fn assistant_blocks(
    message: &Value,
    legacy: &mut LegacyIds,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<Value>, ApiError> {
    let content = match message.get("content") {
        Some(Value::Array(parts)) => {
            // Assistant parts are text or refusal; both are text to Anthropic.
            let texts: Vec<Value> = parts
                .iter()
                .filter_map(|part| part.get("text").or_else(|| part.get("refusal")))
                .filter_map(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(|text| json!({"type": "text", "text": text}))
                .collect();
            Some(Value::Array(texts))
        }
        other => other.cloned(),
    };
    let mut blocks = match content {
        Some(Value::Array(texts)) => texts,
        other => text_blocks(other.as_ref(), at)?,
    };
    if let Some(Value::Array(calls)) = message.get("tool_calls") {
        for (index, call) in calls.iter().enumerate() {
            let field = at(&format!(".tool_calls[{index}]"));
            let id = call.get("id").and_then(Value::as_str);
            let id = id.ok_or_else(|| unsupported(field.clone()))?;
            blocks.push(tool_use(id, call.get("function"), &field)?);
        }
    }
    if let Some(call) = message.get("function_call").filter(|call| call.is_object()) {
        let name = call.get("name").and_then(Value::as_str).unwrap_or("");
        let id = legacy.call_id(name);
        blocks.push(tool_use(&id, Some(call), &at(".function_call"))?);
    }
    Ok(blocks)
}

/// A `tool_use` block from an OpenAI `{name, arguments}` function call.
fn tool_use(id: &str, function: Option<&Value>, field: &str) -> Result<Value, ApiError> {
    let name = function
        .and_then(|function| function.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| unsupported(format!("{field}.function.name")))?;
    let arguments = function
        .and_then(|function| function.get("arguments"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let input = if arguments.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str::<Value>(arguments) {
            Ok(input @ Value::Object(_)) => input,
            _ => return Err(unsupported(format!("{field}.function.arguments"))),
        }
    };
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// A `tool_result` block for the call `id`.
fn tool_result(
    id: &str,
    content: Option<&Value>,
    at: &dyn Fn(&str) -> String,
) -> Result<Value, ApiError> {
    let content = match content {
        Some(Value::String(text)) => json!(text),
        other => Value::Array(text_blocks(other, at)?),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

/// `tools`/`functions` and `tool_choice`/`function_call`.
fn tools(openai: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    let mut tools = Vec::new();
    if let Some(Value::Array(list)) = openai.get("tools") {
        for (index, tool) in list.iter().enumerate() {
            let field = format!("tools[{index}]");
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(unsupported(format!("{field}.type")));
            }
            tools.push(tool_definition(tool.get("function"), &field)?);
        }
    }
    if let Some(Value::Array(list)) = openai.get("functions") {
        for (index, function) in list.iter().enumerate() {
            tools.push(tool_definition(
                Some(function),
                &format!("functions[{index}]"),
            )?);
        }
    }
    let choice = openai
        .get("tool_choice")
        .or_else(|| openai.get("function_call"));
    let mut choice = match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(mode)) => Some(match mode.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            _ => return Err(unsupported("tool_choice".to_string())),
        }),
        Some(named) => {
            let name = named
                .pointer("/function/name")
                .or_else(|| named.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| unsupported("tool_choice".to_string()))?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if tools.is_empty() {
        return Ok(());
    }
    if openai.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice.get("type") != Some(&json!("none")) {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    out.insert("tools".into(), Value::Array(tools));
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    Ok(())
}

/// One Anthropic tool from an OpenAI function definition.
fn tool_definition(function: Option<&Value>, field: &str) -> Result<Value, ApiError> {
    let name = function
        .and_then(|function| function.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| unsupported(format!("{field}.function.name")))?;
    let schema = function
        .and_then(|function| function.get("parameters"))
        .filter(|schema| schema.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    let mut tool = json!({"name": name, "input_schema": schema});
    if let Some(description) = function.and_then(|function| function.get("description")) {
        tool["description"] = description.clone();
    }
    Ok(tool)
}

fn unsupported(field: String) -> ApiError {
    ApiError::invalid(field.clone(), Message::AnthropicUnsupported { field })
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
