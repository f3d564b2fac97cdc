//! `GET|PATCH|DELETE /connectors/{name}/offsets` (KIP-875): listed any
//! time, changed only while the connector is stopped.

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{Shared, connector_type, error, internal, lookup, parse_body, reply};
use crate::connector::ConnectorType;
use crate::offset_request;
use crate::store::configs::{ConnectorState, TargetState};

fn kind(c: &ConnectorState) -> ConnectorType {
    if connector_type(&c.config) == "sink" {
        ConnectorType::Sink
    } else {
        ConnectorType::Source
    }
}

/// The connector, if it may have its offsets changed: stopped, and its
/// tasks gone (the zero-task commit written when it stopped).
fn stopped(w: &Shared, name: &str) -> Result<ConnectorState, Response> {
    let c = lookup(&w.config_state(), name)?;
    if c.target != TargetState::Stopped || !c.tasks.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
            ),
        ));
    }
    Ok(c)
}

pub(super) async fn list(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    let c = match lookup(&w.config_state(), &name) {
        Ok(c) => c,
        Err(e) => return e,
    };
    match kind(&c) {
        ConnectorType::Source => reply(
            StatusCode::OK,
            offset_request::source_json(&w.source_offsets(&name)),
        ),
        ConnectorType::Sink => match w.sink_offsets(&name).await {
            Ok(committed) => reply(StatusCode::OK, offset_request::sink_json(&committed)),
            Err(e) => internal(e),
        },
    }
}

pub(super) async fn alter(
    AxState(w): AxState<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let c = stopped(&w, &name)?;
        let changes = offset_request::parse(kind(&c), &parse_body(&body)?)
            .map_err(|m| error(StatusCode::BAD_REQUEST, m))?;
        w.alter_offsets(&name, changes).await.map_err(internal)?;
        Ok(reply(
            StatusCode::OK,
            json!({"message": "The offsets for this connector have been altered successfully"}),
        ))
    }
    .await;
    result.unwrap_or_else(|e: Response| e)
}

pub(super) async fn reset(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    let result = async {
        let c = stopped(&w, &name)?;
        w.reset_offsets(&name, kind(&c) == ConnectorType::Sink)
            .await
            .map_err(internal)?;
        Ok(reply(
            StatusCode::OK,
            json!({"message": "The offsets for this connector have been reset successfully"}),
        ))
    }
    .await;
    result.unwrap_or_else(|e: Response| e)
}
