//! `GET /connectors/{name}/topics` and `PUT …/topics/reset` (KIP-558): the
//! topics a connector's tasks produced to or consumed from.

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, error, internal, lookup};

fn tracking_enabled(w: &Shared) -> Result<(), Response> {
    if w.config.topic_tracking {
        Ok(())
    } else {
        Err(error(StatusCode::FORBIDDEN, "Topic tracking is disabled."))
    }
}

pub(super) async fn list(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    if let Err(e) = tracking_enabled(&w).and_then(|_| lookup(&w.config_state(), &name).map(|_| ())) {
        return e;
    }
    super::reply(
        StatusCode::OK,
        json!({ name.clone(): {"topics": w.active_topics(&name)} }),
    )
}

pub(super) async fn reset(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    if let Err(e) = tracking_enabled(&w) {
        return e;
    }
    if !w.config.topic_tracking_reset {
        return error(StatusCode::FORBIDDEN, "Topic tracking reset is disabled.");
    }
    if let Err(e) = lookup(&w.config_state(), &name) {
        return e;
    }
    match w.reset_topics(&name).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => internal(e),
    }
}
