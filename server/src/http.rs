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
use kalam_flight::protocol::USER_ID_HEADER;

pub struct HttpState {
    pub engine: Arc<Engine>,
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

/// Same credentials as Flight SQL (`Authorization: Basic` or `Bearer`); the user-id header
/// makes a dba or system account act for a user.
async fn sql(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Json<SqlRequest>) -> Answer {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let principal = {
        let catalog = state.engine.store().catalog();
        match state.engine.sessions.authenticate(&catalog, authorization) {
            Ok(principal) => principal,
            Err(e) => return error(StatusCode::UNAUTHORIZED, e.0),
        }
    };
    let acting_user = headers.get(USER_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let request = match state.engine.request(principal, acting_user, None) {
        Ok(request) => request,
        Err(e) => return engine_error(e),
    };
    let result = match state.engine.execute(request, &body.sql, state.result_rows_max).await {
        Ok(result) => result,
        Err(e) => return engine_error(e),
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
                          "affected_rows": result.affected_rows.unwrap_or(0) }]
        })),
    )
}

fn engine_error(err: EngineError) -> Answer {
    match err {
        EngineError::InvalidStatement(m) => error(StatusCode::BAD_REQUEST, m),
        EngineError::PermissionDenied(m) => error(StatusCode::FORBIDDEN, m),
        EngineError::Conflict(m) => error(StatusCode::CONFLICT, m),
        EngineError::LimitExceeded(m) => error(StatusCode::PAYLOAD_TOO_LARGE, m),
        EngineError::Internal(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
        EngineError::Violation(v) => match v.detail {
            Some(detail) => error(StatusCode::BAD_REQUEST, format!("{} ({detail})", v.message)),
            None => error(StatusCode::BAD_REQUEST, v.message),
        },
    }
}
