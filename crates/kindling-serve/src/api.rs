//! OpenAI's request fields, read by hand from the JSON so that a wrong type
//! names its field (`param`), and OpenAI's error shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kindling_models::generate::StopReason;
use serde_json::{json, Map, Value};

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.to_string()),
            code: None,
        }
    }

    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

/// The request body as a JSON object.
pub(crate) fn object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!(
                "the request body must be a JSON object, got {}",
                type_name(&other)
            ),
        )),
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed access to optional fields; `null` counts as absent, as OpenAI's
/// API treats it.
pub(crate) struct Fields<'a>(pub &'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn wrong(name: &str, want: &str, got: &Value) -> ApiError {
        ApiError::invalid(
            name,
            format!("`{name}` must be {want}, got {}", type_name(got)),
        )
    }

    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(Self::wrong(name, "a boolean", v)),
        }
    }

    pub fn number(&self, name: &str) -> ApiResult<Option<f64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(v) => Err(Self::wrong(name, "a number", v)),
        }
    }

    pub fn integer(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Ok(Some(i)),
                (None, Some(_)) => Ok(Some(i64::MAX)),
                _ => Err(ApiError::invalid(
                    name,
                    format!("`{name}` must be an integer, got {n}"),
                )),
            },
            Some(v) => Err(Self::wrong(name, "an integer", v)),
        }
    }

    pub fn string(&self, name: &str) -> ApiResult<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(Self::wrong(name, "a string", v)),
        }
    }

    /// `stop`: a string or an array of up to four strings.
    pub fn stop(&self) -> ApiResult<Vec<String>> {
        let list = match self.get("stop") {
            None => return Ok(Vec::new()),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(Self::wrong(
                        "stop",
                        "a string or an array of strings",
                        other,
                    )),
                })
                .collect::<ApiResult<Vec<_>>>()?,
            Some(v) => return Err(Self::wrong("stop", "a string or an array of strings", v)),
        };
        if list.len() > 4 {
            return Err(ApiError::invalid(
                "stop",
                format!("`stop` takes at most 4 sequences, got {}", list.len()),
            ));
        }
        if list.iter().any(|s| s.is_empty()) {
            return Err(ApiError::invalid(
                "stop",
                "`stop` sequences must not be empty",
            ));
        }
        Ok(list)
    }
}

/// OpenAI's `finish_reason` for how a generation ended.
pub(crate) fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Eos | StopReason::StopString | StopReason::Caller => "stop",
        StopReason::MaxTokens | StopReason::Context => "length",
    }
}

/// The text of a chat message's `content`: a string, or an array of
/// `{"type": "text", "text": ...}` parts.
pub(crate) fn content_text(v: Option<&Value>, at: usize) -> ApiResult<String> {
    let param = format!("messages[{at}].content");
    match v {
        None | Some(Value::Null) => Err(ApiError::invalid(&param, format!("`{param}` is missing"))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::invalid(
                            &format!("{param}[{j}]"),
                            format!("`{param}[{j}]` must be a text part ({{\"type\": \"text\", \"text\": ...}}); this model reads text only"),
                        ))
                    }
                }
            }
            Ok(text)
        }
        Some(other) => Err(ApiError::invalid(
            &param,
            format!(
                "`{param}` must be a string or an array of text parts, got {}",
                type_name(other)
            ),
        )),
    }
}
