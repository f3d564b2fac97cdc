//! `GET /admin/loggers`, `GET|PUT /admin/loggers/{logger}` (KIP-495), and
//! `?scope=cluster` (KIP-976) for every worker of the group at once.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{Shared, error, internal, parse_body, query_pairs, reply};
use crate::loggers::{LoggerLevel, parse_level};
use crate::store::configs::records;

fn level_json(l: &LoggerLevel) -> Json {
    json!({"level": l.level, "last_modified": l.last_modified})
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(super) async fn list(AxState(w): AxState<Shared>) -> Response {
    let all: serde_json::Map<String, Json> = w
        .loggers
        .all()
        .iter()
        .map(|(n, l)| (n.clone(), level_json(l)))
        .collect();
    reply(StatusCode::OK, Json::Object(all))
}

pub(super) async fn get(AxState(w): AxState<Shared>, Path(logger): Path<String>) -> Response {
    reply(StatusCode::OK, level_json(&w.loggers.get(&logger)))
}

pub(super) async fn set(
    AxState(w): AxState<Shared>,
    Path(logger): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        let body = parse_body(&body)?;
        let Some(level) = body.get("level").and_then(Json::as_str) else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Desired 'level' parameter was not specified in request.",
            ));
        };
        if parse_level(level).is_none() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("Invalid log level '{level}'."),
            ));
        }
        let scope = query_pairs(&q)
            .into_iter()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.to_ascii_lowercase());
        if scope.as_deref() == Some("cluster") {
            // Every worker (this one too) applies it as it reads the record.
            w.write_configs(vec![records::logger_level(&logger, level)])
                .await
                .map_err(internal)?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let changed = w
            .loggers
            .set(&logger, level, now_ms())
            .map_err(|m| error(StatusCode::INTERNAL_SERVER_ERROR, m))?;
        Ok(reply(StatusCode::OK, json!(changed)))
    }
    .await;
    result.unwrap_or_else(|e| e)
}
