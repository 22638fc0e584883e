//! The HTTP front end: `GET /v1/api/healthcheck` and `POST /v1/api/sql` (JSON in, JSON out).
//! It answers in one document, so results are bounded by `limits.http_result_rows_max`; large
//! results belong on Flight SQL.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{Engine, EngineError};

pub struct HttpState {
    pub engine: Arc<Engine>,
    pub root_password: Option<String>,
    pub result_rows_max: usize,
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/v1/api/healthcheck", get(healthcheck))
        .route("/v1/api/sql", post(sql))
        .with_state(state)
}

async fn healthcheck() -> Json<Value> {
    Json(json!({ "status": "healthy", "version": env!("CARGO_PKG_VERSION") }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

type Answer = (StatusCode, Json<Value>);

fn error(code: StatusCode, message: impl Into<String>) -> Answer {
    (code, Json(json!({ "status": "error", "error": { "message": message.into() } })))
}

async fn sql(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Json<SqlRequest>) -> Answer {
    if let Err(answer) = authorize(&state, &headers) {
        return answer;
    }
    let result = match state.engine.execute(&body.sql, state.result_rows_max).await {
        Ok(result) => result,
        Err(EngineError::InvalidStatement(m)) => return error(StatusCode::BAD_REQUEST, m),
        Err(EngineError::LimitExceeded(m)) => return error(StatusCode::PAYLOAD_TOO_LARGE, m),
        Err(EngineError::Internal(m)) => return error(StatusCode::INTERNAL_SERVER_ERROR, m),
    };
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    let batches: Vec<_> = result.batches.iter().collect();
    if let Err(e) = writer.write_batches(&batches).and_then(|_| writer.finish()) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render result as JSON: {e}"));
    }
    let buffer = writer.into_inner();
    let rows: Value = if buffer.is_empty() {
        json!([])
    } else {
        match serde_json::from_slice(&buffer) {
            Ok(rows) => rows,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot render result as JSON: {e}"),
                );
            }
        }
    };
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    let row_count = result.batches.iter().map(|b| b.num_rows()).sum::<usize>();
    (
        StatusCode::OK,
        Json(json!({
            "status": "success",
            "results": [{ "columns": columns, "rows": rows, "row_count": row_count,
                          "affected_rows": result.affected_rows() }]
        })),
    )
}

/// With a root password configured, requests must carry `Authorization: Basic root:<password>`.
/// Without one, the endpoint is open (the server binds loopback by default).
fn authorize(state: &HttpState, headers: &HeaderMap) -> Result<(), Answer> {
    let Some(password) = &state.root_password else {
        return Ok(());
    };
    let unauthorized = || {
        error(StatusCode::UNAUTHORIZED, "authentication required: send Basic credentials of the root account")
    };
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
    let encoded = value.strip_prefix("Basic ").ok_or_else(unauthorized)?;
    let decoded = base64_decode(encoded.trim()).ok_or_else(unauthorized)?;
    let expected = format!("root:{password}");
    if constant_time_eq(decoded.as_bytes(), expected.as_bytes()) { Ok(()) } else { Err(unauthorized()) }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 (RFC 4648) decoding of a short credential string.
fn base64_decode(input: &str) -> Option<String> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a' + 26) as u32),
            b'0'..=b'9' => Some((c - b'0' + 52) as u32),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = input.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let produced = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + produced]);
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: Basic credentials decode exactly, malformed ones are refused.
    #[test]
    fn base64_credentials() {
        assert_eq!(base64_decode("cm9vdDpzZWNyZXQ=").as_deref(), Some("root:secret"));
        assert_eq!(base64_decode("YQ==").as_deref(), Some("a"));
        assert_eq!(base64_decode("YWI=").as_deref(), Some("ab"));
        assert_eq!(base64_decode("!!!!"), None);
        assert_eq!(base64_decode("Y"), None);
    }
}
