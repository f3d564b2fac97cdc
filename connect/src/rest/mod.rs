//! The Kafka Connect REST API (same paths, JSON shapes, status codes and
//! `{"error_code", "message"}` error bodies). Every worker answers every
//! request: configs are written to the config topic by whichever worker
//! is asked, and statuses are read from the status topic.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value as Json, json};

use crate::config_def::ConfigKeyInfo;
use crate::connector::ConnectorPlugin;
use crate::connectors;
use crate::store::configs::{ConfigState, ConnectorState, RestartRequest, TargetState};
use crate::store::statuses::{State, Status, Subject};
use crate::validate;
use crate::worker::{Props, Worker};

mod loggers;
mod offsets;
mod topics;

/// The Kafka Connect version whose REST API this one follows.
pub const COMPATIBLE_VERSION: &str = "4.0.0";

type Shared = Arc<Worker>;

/// An answer with a JSON body.
fn reply(status: StatusCode, body: Json) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Kafka Connect's error body.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    reply(
        status,
        json!({ "error_code": status.as_u16(), "message": message.into() }),
    )
}

fn not_found(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("Connector {name} not found"))
}

fn internal(e: anyhow::Error) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

/// The query's pairs, percent-decoded (`form_urlencoded`, already built
/// for `url`, so a malformed escape cannot panic the server).
fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn flag(q: &[(String, String)], name: &str) -> bool {
    q.iter()
        .any(|(k, v)| k == name && (v.is_empty() || v.eq_ignore_ascii_case("true")))
}

fn parse_body(body: &Bytes) -> Result<Json, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("The request body is not valid JSON: {e}"),
        )
    })
}

/// A JSON object of strings as connector properties (other scalars are
/// taken as their text, as Kafka's Jackson mapping does).
fn props_of(v: &Json) -> Result<Props, Response> {
    let obj = v.as_object().ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "The connector configuration must be a JSON object",
        )
    })?;
    obj.iter()
        .map(|(k, v)| {
            let s = match v {
                Json::String(s) => s.clone(),
                Json::Null => {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        format!("The value of {k} can't be null"),
                    ));
                }
                other => other.to_string(),
            };
            Ok((k.clone(), s))
        })
        .collect()
}

fn connector_type(config: &Props) -> &'static str {
    config
        .get("connector.class")
        .and_then(|c| connectors::find(c))
        .map(|p| p.kind.name())
        .unwrap_or("unknown")
}

fn info(name: &str, c: &ConnectorState) -> Json {
    json!({
        "name": name,
        "config": c.config,
        "tasks": (0..c.tasks.len()).map(|i| json!({"connector": name, "task": i})).collect::<Vec<_>>(),
        "type": connector_type(&c.config),
    })
}

fn state_json(status: Option<&Status>, worker: &str) -> Json {
    let mut out = serde_json::Map::new();
    match status {
        Some(s) => {
            out.insert("state".into(), json!(s.state.name()));
            out.insert("worker_id".into(), json!(s.worker_id));
            if let Some(t) = &s.trace {
                out.insert("trace".into(), json!(t));
            }
        }
        None => {
            out.insert("state".into(), json!(State::Unassigned.name()));
            out.insert("worker_id".into(), json!(worker));
        }
    }
    Json::Object(out)
}

/// `/status`'s body; `restarting` marks what a restart is about to
/// restart (`None`: nothing).
fn status_json(
    w: &Worker,
    name: &str,
    c: &ConnectorState,
    restarting: Option<&dyn Fn(&Subject, Option<&Status>) -> bool>,
) -> Json {
    let subject = Subject::Connector(name.to_string());
    let mut status = w.status_of(&subject);
    let mark = |subject: &Subject, s: &mut Option<Status>| {
        if let Some(f) = restarting
            && f(subject, s.as_ref())
        {
            let mut st = s.clone().unwrap_or(Status {
                state: State::Restarting,
                trace: None,
                worker_id: w.id.clone(),
                generation: 0,
            });
            st.state = State::Restarting;
            st.trace = None;
            *s = Some(st);
        }
    };
    mark(&subject, &mut status);
    let known: BTreeMap<i32, Status> = w.task_statuses(name).into_iter().collect();
    let tasks: Vec<Json> = (0..c.tasks.len() as i32)
        .map(|i| {
            let subject = Subject::Task(name.to_string(), i);
            let mut s = known.get(&i).cloned();
            mark(&subject, &mut s);
            let mut j = state_json(s.as_ref(), &w.id);
            j.as_object_mut()
                .expect("an object")
                .insert("id".into(), json!(i));
            j
        })
        .collect();
    json!({
        "name": name,
        "connector": state_json(status.as_ref(), &w.id),
        "tasks": tasks,
        "type": connector_type(&c.config),
    })
}

fn lookup(state: &ConfigState, name: &str) -> Result<ConnectorState, Response> {
    state
        .connectors
        .get(name)
        .cloned()
        .ok_or_else(|| not_found(name))
}

/// Checks a connector config before it is stored: a 400 naming every
/// problem, in Kafka's words.
fn check_config(name: &str, config: &mut Props) -> Result<(), Response> {
    if name.trim().is_empty() || name.trim() != name {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Connector name must not be empty or have leading or trailing whitespace",
        ));
    }
    if name.contains('/') {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "connector name should not contain '/'",
        ));
    }
    match config.get("name") {
        Some(n) if n != name => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
                ),
            ));
        }
        Some(_) => {}
        None => {
            config.insert("name".into(), name.to_string());
        }
    }
    let Some(class) = config.get("connector.class").cloned() else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "Connector config {} contains no connector type",
                serde_json::to_string(&config).unwrap_or_default()
            ),
        ));
    };
    let Some(plugin) = connectors::find(&class) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "{}, available connectors are: {}",
                connectors::unknown(&class),
                connectors::all()
                    .iter()
                    .map(|p| p.class)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let infos = validate::validate(&plugin, config);
    if infos.error_count > 0 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "Connector configuration is invalid and contains the following {} error(s):\n{}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
                infos.error_count,
                infos.errors().join("\n")
            ),
        ));
    }
    Ok(())
}

async fn root(AxState(w): AxState<Shared>) -> Response {
    reply(
        StatusCode::OK,
        json!({
            "version": COMPATIBLE_VERSION,
            "commit": format!("weir-{}", env!("CARGO_PKG_VERSION")),
            "kafka_cluster_id": w.cluster.cluster_id(),
        }),
    )
}

async fn list(AxState(w): AxState<Shared>, RawQuery(q): RawQuery) -> Response {
    let q = query_pairs(&q);
    let expand: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "expand")
        .map(|(_, v)| v.as_str())
        .collect();
    let state = w.config_state();
    if expand.is_empty() {
        let names: Vec<&String> = state.connectors.keys().collect();
        return reply(StatusCode::OK, json!(names));
    }
    let mut out = serde_json::Map::new();
    for (name, c) in &state.connectors {
        let mut entry = serde_json::Map::new();
        if expand.contains(&"status") {
            entry.insert("status".into(), status_json(&w, name, c, None));
        }
        if expand.contains(&"info") {
            entry.insert("info".into(), info(name, c));
        }
        out.insert(name.clone(), Json::Object(entry));
    }
    reply(StatusCode::OK, Json::Object(out))
}

fn initial_state(v: Option<&Json>) -> Result<Option<TargetState>, Response> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => match s.to_ascii_uppercase().as_str() {
            "RUNNING" => Ok(Some(TargetState::Started)),
            "PAUSED" => Ok(Some(TargetState::Paused)),
            "STOPPED" => Ok(Some(TargetState::Stopped)),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                format!("Invalid initial state {s}: must be one of RUNNING, PAUSED, STOPPED"),
            )),
        },
        Some(other) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("Invalid initial state {other}"),
        )),
    }
}

async fn create(AxState(w): AxState<Shared>, body: Bytes) -> Response {
    let result: Result<Response, Response> = async {
        let body = parse_body(&body)?;
        let name = body
            .get("name")
            .and_then(Json::as_str)
            .map(str::to_string)
            .or_else(|| {
                body.get("config")
                    .and_then(|c| c.get("name"))
                    .and_then(Json::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, "Connector name must be specified"))?;
        let mut config = props_of(body.get("config").unwrap_or(&Json::Null))?;
        let initial = initial_state(body.get("initial_state"))?;
        check_config(&name, &mut config)?;
        if w.config_state().connectors.contains_key(&name) {
            return Err(error(
                StatusCode::CONFLICT,
                format!("Connector {name} already exists"),
            ));
        }
        if let Some(offsets) = body.get("initial_offsets").filter(|o| !o.is_null()) {
            let parsed = parse_offsets(offsets)?;
            w.put_offsets(&name, &parsed).await.map_err(internal)?;
        }
        w.put_connector(&name, &config, initial)
            .await
            .map_err(internal)?;
        let state = w.config_state();
        let c = lookup(&state, &name)?;
        let mut r = reply(StatusCode::CREATED, info(&name, &c));
        if let Ok(v) = HeaderValue::from_str(&format!("/connectors/{name}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Ok(r)
    }
    .await;
    result.unwrap_or_else(|e| e)
}

/// `[{"partition": {...}, "offset": {...}}]`, as offsets requests carry them.
fn parse_offsets(
    v: &Json,
) -> Result<Vec<(serde_json::Map<String, Json>, serde_json::Map<String, Json>)>, Response> {
    let bad = |why: &str| error(StatusCode::BAD_REQUEST, why.to_string());
    let list = v
        .as_array()
        .ok_or_else(|| bad("Offsets must be a list of {\"partition\", \"offset\"} objects"))?;
    list.iter()
        .map(|e| {
            let partition = e
                .get("partition")
                .and_then(Json::as_object)
                .ok_or_else(|| bad("Each offset needs a \"partition\" object"))?;
            let offset = e
                .get("offset")
                .and_then(Json::as_object)
                .ok_or_else(|| bad("Each offset needs an \"offset\" object"))?;
            Ok((partition.clone(), offset.clone()))
        })
        .collect()
}

async fn get_connector(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    match lookup(&w.config_state(), &name) {
        Ok(c) => reply(StatusCode::OK, info(&name, &c)),
        Err(e) => e,
    }
}

async fn get_config(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    match lookup(&w.config_state(), &name) {
        Ok(c) => reply(StatusCode::OK, json!(c.config)),
        Err(e) => e,
    }
}

async fn put_config(
    AxState(w): AxState<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let result: Result<Response, Response> = async {
        let mut config = props_of(&parse_body(&body)?)?;
        check_config(&name, &mut config)?;
        let existed = w.config_state().connectors.contains_key(&name);
        w.put_connector(&name, &config, None)
            .await
            .map_err(internal)?;
        let c = lookup(&w.config_state(), &name)?;
        let status = if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(reply(status, info(&name, &c)))
    }
    .await;
    result.unwrap_or_else(|e| e)
}

async fn patch_config(
    AxState(w): AxState<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let result: Result<Response, Response> = async {
        let patch = parse_body(&body)?;
        let obj = patch.as_object().ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "The configuration patch must be a JSON object",
            )
        })?;
        let mut config = lookup(&w.config_state(), &name)?.config;
        for (k, v) in obj {
            match v {
                Json::Null => {
                    config.remove(k);
                }
                Json::String(s) => {
                    config.insert(k.clone(), s.clone());
                }
                other => {
                    config.insert(k.clone(), other.to_string());
                }
            }
        }
        check_config(&name, &mut config)?;
        w.put_connector(&name, &config, None)
            .await
            .map_err(internal)?;
        let c = lookup(&w.config_state(), &name)?;
        Ok(reply(StatusCode::OK, info(&name, &c)))
    }
    .await;
    result.unwrap_or_else(|e| e)
}

async fn delete_connector(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    if let Err(e) = lookup(&w.config_state(), &name) {
        return e;
    }
    if let Err(e) = w.delete_connector(&name).await {
        return internal(e);
    }
    // A deleted connector's active topics go with it (KIP-558).
    if let Err(e) = w.reset_topics(&name).await {
        tracing::warn!(connector = %name, error = %e, "forgetting a deleted connector's topics");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn status(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    match lookup(&w.config_state(), &name) {
        Ok(c) => reply(StatusCode::OK, status_json(&w, &name, &c, None)),
        Err(e) => e,
    }
}

async fn tasks(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    match lookup(&w.config_state(), &name) {
        Ok(c) => reply(
            StatusCode::OK,
            json!(
                c.tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| json!({"id": {"connector": name, "task": i}, "config": t}))
                    .collect::<Vec<_>>()
            ),
        ),
        Err(e) => e,
    }
}

fn task_index(c: &ConnectorState, name: &str, task: &str) -> Result<i32, Response> {
    task.parse::<i32>()
        .ok()
        .filter(|i| *i >= 0 && (*i as usize) < c.tasks.len())
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("Task {name}-{task} not found"),
            )
        })
}

async fn task_status(
    AxState(w): AxState<Shared>,
    Path((name, task)): Path<(String, String)>,
) -> Response {
    let result: Result<Response, Response> = (|| {
        let c = lookup(&w.config_state(), &name)?;
        let i = task_index(&c, &name, &task)?;
        let s = w.status_of(&Subject::Task(name.clone(), i));
        let mut j = state_json(s.as_ref(), &w.id);
        j.as_object_mut()
            .expect("an object")
            .insert("id".into(), json!(i));
        Ok(reply(StatusCode::OK, j))
    })();
    result.unwrap_or_else(|e| e)
}

async fn restart(
    AxState(w): AxState<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(&q);
    let include_tasks = flag(&q, "includeTasks");
    let only_failed = flag(&q, "onlyFailed");
    let c = match lookup(&w.config_state(), &name) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let req = RestartRequest {
        connector: name.clone(),
        task: None,
        include_tasks,
        only_failed,
    };
    // The body shows what the request restarts, before it is acted on.
    let body = (include_tasks || only_failed).then(|| {
        let will = |s: &Subject, st: Option<&Status>| {
            let failed = st.is_some_and(|st| st.state == State::Failed);
            let in_scope = matches!(s, Subject::Connector(_)) || include_tasks;
            in_scope && (!only_failed || failed)
        };
        status_json(&w, &name, &c, Some(&will))
    });
    if let Err(e) = w.request_restart(&req).await {
        return internal(e);
    }
    match body {
        Some(b) => reply(StatusCode::ACCEPTED, b),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn restart_task(
    AxState(w): AxState<Shared>,
    Path((name, task)): Path<(String, String)>,
) -> Response {
    let c = match lookup(&w.config_state(), &name) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let i = match task_index(&c, &name, &task) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let req = RestartRequest {
        connector: name,
        task: Some(i),
        include_tasks: false,
        only_failed: false,
    };
    match w.request_restart(&req).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => internal(e),
    }
}

async fn set_target(w: &Worker, name: &str, state: TargetState, ok: StatusCode) -> Response {
    if let Err(e) = lookup(&w.config_state(), name) {
        return e;
    }
    match w.set_target(name, state).await {
        Ok(()) => ok.into_response(),
        Err(e) => internal(e),
    }
}

async fn pause(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    set_target(&w, &name, TargetState::Paused, StatusCode::ACCEPTED).await
}

async fn resume(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    set_target(&w, &name, TargetState::Started, StatusCode::ACCEPTED).await
}

async fn stop(AxState(w): AxState<Shared>, Path(name): Path<String>) -> Response {
    set_target(&w, &name, TargetState::Stopped, StatusCode::NO_CONTENT).await
}

fn plugin_json(class: &str, kind: &str, version: &str) -> Json {
    json!({"class": class, "type": kind, "version": version})
}

async fn plugins(RawQuery(q): RawQuery) -> Response {
    let q = query_pairs(&q);
    let connectors_only = !q
        .iter()
        .any(|(k, v)| k == "connectorsOnly" && v.eq_ignore_ascii_case("false"));
    let mut out: Vec<Json> = connectors::all()
        .iter()
        .map(|p| plugin_json(p.class, p.kind.name(), p.version))
        .collect();
    if !connectors_only {
        for p in crate::converter::plugins()
            .into_iter()
            .chain(crate::transforms::plugins())
        {
            out.push(plugin_json(
                p.class,
                p.kind.name(),
                env!("CARGO_PKG_VERSION"),
            ));
        }
    }
    reply(StatusCode::OK, json!(out))
}

fn find_plugin(name: &str) -> Result<ConnectorPlugin, Response> {
    connectors::find(name).ok_or_else(|| error(StatusCode::NOT_FOUND, connectors::unknown(name)))
}

async fn plugin_config(Path(plugin): Path<String>) -> Response {
    if let Ok(p) = find_plugin(&plugin) {
        let keys: Vec<ConfigKeyInfo> = (p.connector)()
            .config_def()
            .keys
            .iter()
            .map(ConfigKeyInfo::from)
            .collect();
        return reply(StatusCode::OK, json!(keys));
    }
    let other = crate::converter::plugins()
        .into_iter()
        .chain(crate::transforms::plugins())
        .find(|p| p.answers_to(&plugin));
    match other {
        Some(p) => {
            let keys: Vec<ConfigKeyInfo> = (p.config_def)()
                .keys
                .iter()
                .map(ConfigKeyInfo::from)
                .collect();
            reply(StatusCode::OK, json!(keys))
        }
        None => error(StatusCode::NOT_FOUND, format!("Unknown plugin {plugin}.")),
    }
}

async fn validate_config(Path(plugin): Path<String>, body: Bytes) -> Response {
    let result: Result<Response, Response> = (|| {
        let config = props_of(&parse_body(&body)?)?;
        let p = find_plugin(&plugin)?;
        if let Some(class) = config.get("connector.class")
            && !p.answers_to(class)
        {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("Included connector type {class} does not match request type {plugin}"),
            ));
        }
        let infos = validate::validate(&p, &config);
        Ok(reply(
            StatusCode::OK,
            serde_json::to_value(infos).expect("serializes"),
        ))
    })();
    result.unwrap_or_else(|e| e)
}

async fn fallback() -> Response {
    error(StatusCode::NOT_FOUND, "HTTP 404 Not Found")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}

pub fn router(worker: Arc<Worker>) -> Router {
    let n = method_not_allowed;
    Router::new()
        .route("/", get(root).fallback(n))
        .route("/connectors", get(list).post(create).fallback(n))
        .route(
            "/connectors/{name}",
            get(get_connector).delete(delete_connector).fallback(n),
        )
        .route(
            "/connectors/{name}/config",
            get(get_config)
                .put(put_config)
                .patch(patch_config)
                .fallback(n),
        )
        .route("/connectors/{name}/status", get(status).fallback(n))
        .route("/connectors/{name}/tasks", get(tasks).fallback(n))
        .route(
            "/connectors/{name}/tasks/{task}/status",
            get(task_status).fallback(n),
        )
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task).fallback(n),
        )
        .route("/connectors/{name}/restart", post(restart).fallback(n))
        .route("/connectors/{name}/pause", put(pause).fallback(n))
        .route("/connectors/{name}/resume", put(resume).fallback(n))
        .route("/connectors/{name}/stop", put(stop).fallback(n))
        .route(
            "/connectors/{name}/offsets",
            get(offsets::list)
                .patch(offsets::alter)
                .delete(offsets::reset)
                .fallback(n),
        )
        .route("/connectors/{name}/topics", get(topics::list).fallback(n))
        .route(
            "/connectors/{name}/topics/reset",
            put(topics::reset).fallback(n),
        )
        .route("/admin/loggers", get(loggers::list).fallback(n))
        .route(
            "/admin/loggers/{logger}",
            get(loggers::get).put(loggers::set).fallback(n),
        )
        .route("/connector-plugins", get(plugins).fallback(n))
        .route(
            "/connector-plugins/{plugin}/config",
            get(plugin_config).fallback(n),
        )
        .route(
            "/connector-plugins/{plugin}/config/validate",
            put(validate_config).fallback(n),
        )
        .fallback(fallback)
        .with_state(worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let q = query_pairs(&Some(
            "expand=status&expand=info&includeTasks=true&x=a%2Fb+c".into(),
        ));
        assert_eq!(q[0], ("expand".into(), "status".into()));
        assert_eq!(q[3], ("x".into(), "a/b c".into()));
        assert!(flag(&q, "includeTasks"));
        assert!(!flag(&q, "onlyFailed"));
    }

    #[test]
    fn config_checks_name_the_problem() {
        let mut c: Props = [("connector.class", "FileStreamSink"), ("name", "other")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = check_config("mine", &mut c).unwrap_err();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        c.remove("name");
        c.insert("connector.class".into(), "Nope".into());
        assert_eq!(
            check_config("mine", &mut c).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(c.get("name").map(String::as_str), Some("mine"));
    }
}
