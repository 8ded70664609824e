//! Reading the admin OpenAPI document (`GET /api/openapi.json`): its
//! operations, their path and query parameters and request bodies, and the
//! JSON kinds each schema accepts, so the bad-input table is generated from
//! the same document clients read. `$ref`, `oneOf`/`anyOf`/`allOf`, type
//! arrays (`["string", "null"]`) and `enum` are understood; anything else is
//! treated as "accepts anything" and gets no wrong-type cases.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Bench, send};

/// One operation of the document.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub method: Method,
    pub path: String,
    pub params: Vec<Param>,
    /// The JSON request body's schema and whether the body is required.
    pub body: Option<(Value, bool)>,
    /// Whether the operation opts out of the document's security (`security: [{}]`).
    pub public: bool,
}

impl Operation {
    pub(crate) fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    pub(crate) fn query_params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|param| param.location == "query")
    }

    pub(crate) fn has_path_params(&self) -> bool {
        self.params.iter().any(|param| param.location == "path")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: String,
    pub location: String,
    pub schema: Value,
}

/// The document, fetched with the admin token.
pub(crate) async fn document(bench: &Bench) -> Value {
    let reply = send(bench.gateway.admin(Method::GET, "/api/openapi.json")).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json.expect("the document is JSON")
}

/// Every operation, in path then method order.
pub(crate) fn operations(document: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let params = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|param| Param {
                    name: param["name"].as_str().unwrap().to_string(),
                    location: param["in"].as_str().unwrap().to_string(),
                    schema: param["schema"].clone(),
                })
                .collect();
            let body = operation.get("requestBody").map(|body| {
                let schema = body["content"]["application/json"]["schema"].clone();
                (schema, body["required"] == json!(true))
            });
            let public = operation["security"]
                .as_array()
                .is_some_and(|schemes| schemes.iter().all(|scheme| scheme == &json!({})));
            found.push(Operation {
                method: Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                path: path.clone(),
                params,
                body,
                public,
            });
        }
    }
    found
}

/// `schema` with `$ref`s followed. A reference the document does not
/// define resolves to itself (a schema that accepts anything, so it gets no
/// generated cases); `the_document_defines_every_schema_it_refers_to`
/// fails on it instead, so the sweep still covers everything else.
pub(crate) fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    let target = schema["$ref"]
        .as_str()
        .and_then(|reference| document.pointer(reference.trim_start_matches('#')));
    match target {
        Some(target) => resolve(document, target),
        None => schema,
    }
}

/// Every `$ref` in `value`, recursively.
fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(object) => {
            if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                found.push(reference);
            }
            object.values().for_each(|value| references(value, found));
        }
        Value::Array(items) => items.iter().for_each(|value| references(value, found)),
        _ => {}
    }
}

/// The document defines every schema it refers to: a dangling `$ref` is a
/// document no client can read (and a body the sweep cannot generate).
#[tokio::test]
async fn the_document_defines_every_schema_it_refers_to() {
    let bench = Bench::start().await;
    let document = document(&bench).await;
    let mut found = Vec::new();
    references(&document, &mut found);
    let dangling: BTreeSet<&str> = found
        .into_iter()
        .filter(|reference| {
            document
                .pointer(reference.trim_start_matches('#'))
                .is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "undefined: {dangling:?}");
}

/// The alternatives of a composed schema (or the schema itself), resolved.
fn alternatives<'a>(document: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    let schema = resolve(document, schema);
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = schema[key].as_array() {
            return list
                .iter()
                .flat_map(|alternative| alternatives(document, alternative))
                .collect();
        }
    }
    vec![schema]
}

/// The JSON kinds `schema` accepts (`string`, `integer`, `number`,
/// `boolean`, `array`, `object`, `null`); `None` when it accepts anything.
pub(crate) fn kinds(document: &Value, schema: &Value) -> Option<BTreeSet<String>> {
    let mut kinds = BTreeSet::new();
    for alternative in alternatives(document, schema) {
        match &alternative["type"] {
            Value::String(kind) => {
                kinds.insert(kind.clone());
            }
            Value::Array(list) => {
                kinds.extend(list.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ if alternative.get("enum").is_some() => {
                kinds.insert("string".to_string());
            }
            _ => return None,
        }
        if alternative["nullable"] == json!(true) {
            kinds.insert("null".to_string());
        }
    }
    if kinds.contains("integer") {
        kinds.insert("number-integral".to_string());
    }
    Some(kinds)
}

/// The string values an enum schema allows, if it is one.
pub(crate) fn enum_values(document: &Value, schema: &Value) -> Option<Vec<String>> {
    alternatives(document, schema)
        .into_iter()
        .find_map(|alternative| {
            alternative["enum"].as_array().map(|values| {
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
        })
}

/// The object properties of `schema` and whether each is required.
pub(crate) fn properties(document: &Value, schema: &Value) -> Vec<(String, Value, bool)> {
    let mut found = Vec::new();
    for alternative in alternatives(document, schema) {
        let required: Vec<&str> = alternative["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (name, property) in alternative["properties"].as_object().into_iter().flatten() {
            found.push((
                name.clone(),
                property.clone(),
                required.contains(&name.as_str()),
            ));
        }
    }
    found
}

/// The item schema of an array schema, if it is one.
pub(crate) fn items<'a>(document: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    alternatives(document, schema)
        .into_iter()
        .find_map(|alternative| alternative.get("items"))
}

/// One value of each JSON kind, named, for wrong-type cases: a value is
/// wrong for a schema when its kind is not among the schema's kinds.
pub(crate) fn wrong_kinds(accepted: &BTreeSet<String>) -> Vec<(&'static str, Value)> {
    let samples: [(&str, &str, Value); 7] = [
        ("string", "string", json!("wrong")),
        ("integer", "number-integral", json!(42)),
        ("float", "number", json!(1.5)),
        ("boolean", "boolean", json!(true)),
        ("array", "array", json!([1, "two"])),
        ("object", "object", json!({"x": 1})),
        ("null", "null", Value::Null),
    ];
    samples
        .into_iter()
        .filter(|(_, kind, _)| {
            let integral_as_number = *kind == "number-integral" && accepted.contains("number");
            !(accepted.contains(*kind) || integral_as_number)
        })
        .map(|(name, _, value)| (name, value))
        .collect()
}
