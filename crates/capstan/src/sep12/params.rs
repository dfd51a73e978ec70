//! SEP-12 request parameters, from whichever form the client chose (SEP12-03): the query
//! string, a JSON object, an HTML form or `multipart/form-data` with files. All become one
//! flat map of text values plus the uploaded files.

use std::collections::BTreeMap;
use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::Method;
use axum::http::header::CONTENT_LENGTH;
use serde_json::Value;

use crate::anchor::AppState;
use crate::http::ApiError;

/// A file part of a multipart body.
#[derive(Debug, Clone)]
pub struct Upload {
    pub content_type: String,
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
pub struct Params {
    pub text: BTreeMap<String, String>,
    pub files: BTreeMap<String, Upload>,
}

impl Params {
    /// Removes and returns a parameter; an empty value counts as absent.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.text.remove(key).filter(|v| !v.is_empty())
    }

    fn insert(&mut self, key: String, value: String) -> Result<(), ApiError> {
        // No SEP-9 value, memo or id holds a NUL, and PostgreSQL cannot store one in TEXT.
        if key.contains('\0') || value.contains('\0') {
            return Err(ApiError::bad_request(format!(
                "parameter {key:?} contains a NUL character"
            )));
        }
        if self.text.contains_key(&key) || self.files.contains_key(&key) {
            return Err(ApiError::bad_request(format!(
                "parameter {key} is given twice"
            )));
        }
        self.text.insert(key, value);
        Ok(())
    }
}

/// The parameters of a SEP-12 request: the query string, then the body.
pub struct Sep12Params(pub Params);

impl FromRequest<AppState> for Sep12Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let mut params = Params::default();
        if let Some(query) = req.uri().query() {
            let pairs = form_pairs(query.as_bytes())
                .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
            for (key, value) in pairs {
                params.insert(key, value)?;
            }
        }
        if req.method() == Method::GET {
            return Ok(Sep12Params(params));
        }
        let content_type = crate::http::media_type(req.headers()).unwrap_or_default();
        // Some clients (reqwest among them) send a form without parts as an empty body; like
        // an empty JSON or form body, it carries no parameters.
        let empty = req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        if content_type == "multipart/form-data" {
            if empty {
                return Ok(Sep12Params(params));
            }
            let max_file = state.config.kyc.max_file_bytes;
            let multipart = Multipart::from_request(req, state).await.map_err(|e| {
                ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
            })?;
            read_multipart(multipart, max_file, &mut params).await?;
            return Ok(Sep12Params(params));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::bad_request(format!("cannot read request body: {}", e.body_text()))
            }
        })?;
        let json = match content_type.as_str() {
            "application/json" => true,
            "application/x-www-form-urlencoded" => false,
            "" | "text/plain" => bytes.trim_ascii_start().starts_with(b"{"),
            other => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "content type {other} is not accepted; send application/json, application/x-www-form-urlencoded or multipart/form-data"
                )));
            }
        };
        if bytes.trim_ascii().is_empty() {
            return Ok(Sep12Params(params));
        }
        if json {
            let Members(members) = serde_json::from_slice(&bytes).map_err(|e| {
                if e.classify() == serde_json::error::Category::Data {
                    ApiError::bad_request("the JSON body must be an object")
                } else {
                    ApiError::bad_request(format!("invalid JSON body: {e}"))
                }
            })?;
            for (key, value) in members {
                let text = match value {
                    Value::Null => continue,
                    Value::String(s) => s,
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    // Held as a float, it has lost digits already (a 30-digit account
                    // number) or would be stored in another form than sent (1e3, 1.50).
                    Value::Number(_) => {
                        return Err(ApiError::bad_request(format!(
                            "{key} must be a string or a whole number of at most 64 bits; send other numbers as strings"
                        )));
                    }
                    Value::Bool(b) => b.to_string(),
                    Value::Array(_) | Value::Object(_) => {
                        return Err(ApiError::bad_request(format!(
                            "{key} must be a string or a number: SEP-9 names are flat, send nested fields as \"organization.name\"-style keys"
                        )));
                    }
                };
                params.insert(key, text)?;
            }
        } else {
            let pairs = form_pairs(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid form body: {e}")))?;
            for (key, value) in pairs {
                params.insert(key, value)?;
            }
        }
        Ok(Sep12Params(params))
    }
}

/// The members of a JSON object in order, each duplicate kept so that it can be refused
/// like a duplicate form field (a map would silently keep the last).
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// `application/x-www-form-urlencoded` pairs (a query string, or a form body). A name or
/// value that is not UTF-8 once decoded is an error: the usual lenient decoding would turn
/// it into U+FFFD and the altered text would be stored as if sent.
fn form_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    bytes
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let name = String::from_utf8(percent_decode(name))
                .map_err(|_| "a parameter name is not UTF-8 text".to_owned())?;
            let value = String::from_utf8(percent_decode(value))
                .map_err(|_| format!("{name} is not UTF-8 text"))?;
            Ok((name, value))
        })
        .collect()
}

/// Form decoding: `+` is a space, `%XX` a byte; a `%` without two hex digits stands for
/// itself, as browsers send it.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        i += 1;
        match b {
            b'+' => out.push(b' '),
            b'%' => match (hex(input.get(i)), hex(input.get(i + 1))) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
    }
    out
}

/// Reads every part. Parts with a file name, or a content type other than text, are
/// files, each at most `max_file` bytes (413 naming the field otherwise).
async fn read_multipart(
    mut multipart: Multipart,
    max_file: usize,
    params: &mut Params,
) -> Result<(), ApiError> {
    let part_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large()
        } else {
            ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(part_error)? {
        let Some(name) = field.name().map(str::to_owned).filter(|n| !n.is_empty()) else {
            return Err(ApiError::bad_request("a multipart part has no name"));
        };
        let content_type = field.content_type().map(str::to_owned);
        let is_file = field.file_name().is_some()
            || content_type
                .as_deref()
                .is_some_and(|t| !t.starts_with("text/plain"));
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(part_error)? {
            if bytes.len() + chunk.len() > max_file {
                return Err(ApiError::PayloadTooLarge(format!(
                    "{name} is larger than the {max_file} bytes this anchor accepts per file"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if is_file {
            if params.files.contains_key(&name) || params.text.contains_key(&name) {
                return Err(ApiError::bad_request(format!(
                    "parameter {name} is given twice"
                )));
            }
            params.files.insert(
                name,
                Upload {
                    content_type: content_type.unwrap_or_else(|| "application/octet-stream".into()),
                    bytes: Bytes::from(bytes),
                },
            );
        } else {
            let text = String::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request(format!("{name} is not UTF-8 text")))?;
            params.insert(name, text)?;
        }
    }
    Ok(())
}
