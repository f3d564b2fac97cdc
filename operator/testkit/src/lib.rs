//! An in-process Kubernetes API server over plain HTTP, for operator tests.
//!
//! [`FakeApiServer::start`] binds `127.0.0.1:0` and returns a real
//! [`kube::Client`] pointed at it, so typed `Api`s, `DynamicObject`s and
//! kube-runtime watchers and controllers talk to it unchanged.
//!
//! It is generic over resources: objects are stored as JSON, keyed by
//! group/version, plural, namespace and name, under both core
//! (`/api/v1/...`) and group (`/apis/{group}/{version}/...`) paths, namespaced
//! or cluster-scoped, with a `/status` subresource for every resource.
//!
//! Supported: create, get, list and watch (label and field selectors,
//! resourceVersion, bookmarks), replace with resourceVersion preconditions,
//! JSON merge patch (strategic merge patch is treated as a merge patch),
//! JSON patch (RFC 6902),
//! server-side apply with per-manager field ownership, the status
//! subresource, delete with finalizers, delete-collection and
//! background owner-reference garbage collection.
//!
//! Simplifications: every resource has a status subresource; lists are
//! atomic for server-side apply; `managedFields` is kept server-side and not
//! returned; list pagination is ignored (everything in one page); watches
//! never answer 410 Gone; other patch types get 415.

mod merge;
mod selector;
mod store;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use merge::FieldPath;
pub use store::{ApiError, Key};
use store::{Filter, Store, Sub};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding the listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error("building the server URL: {0}")]
    Url(#[from] axum::http::uri::InvalidUri),
    #[error("building the kube client: {0}")]
    Client(#[from] kube::Error),
}

/// One request as the server received it, for verifier-style assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (still percent-encoded).
    pub query: String,
    pub field_manager: Option<String>,
    pub body: Option<Value>,
}

struct Shared {
    store: Mutex<Store>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// The newest resourceVersion; watches wait on it.
    changed: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake API server; it stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    url: String,
    task: JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Starts a server on `127.0.0.1:0` and a client that talks to it.
    pub async fn start() -> Result<(Self, kube::Client), StartError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            requests: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            // The server runs until the handle is dropped; an accept error ends it.
            let _ = axum::serve(listener, app).await;
        });
        let url = format!("http://{addr}");
        let mut config = kube::Config::new(url.parse::<Uri>()?);
        config.default_namespace = "default".into();
        let client = kube::Client::try_from(config)?;
        Ok((Self { shared, url, task }, client))
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// The stored object, bypassing HTTP. `api_version` is `v1` or `group/version`;
    /// `namespace` is `""` for cluster-scoped objects.
    pub fn object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let key = Key {
            gv: api_version.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        lock(&self.shared.store).get(&key).ok()
    }

    /// The field paths each server-side-apply manager owns on an object
    /// (status-subresource managers are suffixed `/status`).
    pub fn managed_fields(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> BTreeMap<String, std::collections::BTreeSet<FieldPath>> {
        let key = Key {
            gv: api_version.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        lock(&self.shared.store).managed_fields(&key)
    }
}

/// A parsed request path.
#[derive(Debug, PartialEq)]
struct Route {
    gv: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_route(path: &str) -> Option<Route> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let (gv, rest) = match segs.first().map(String::as_str) {
        Some("api") if segs.len() >= 3 => (segs[1].clone(), &segs[2..]),
        Some("apis") if segs.len() >= 4 => (format!("{}/{}", segs[1], segs[2]), &segs[3..]),
        _ => return None,
    };
    let (namespace, rest) = if rest.len() >= 3 && rest[0] == "namespaces" {
        (Some(rest[1].clone()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.is_empty() || rest.len() > 3 || rest.iter().any(String::is_empty) {
        return None;
    }
    Some(Route {
        gv,
        plural: rest[0].clone(),
        namespace,
        name: rest.get(1).cloned(),
        sub: rest.get(2).cloned(),
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn status_body(e: &ApiError) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": e.message,
        "reason": e.reason,
        "code": e.code,
    })
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &status_body(e))
}

fn filter_from(route: &Route, query: &BTreeMap<String, String>) -> Result<Filter, ApiError> {
    let bad = |m: String| ApiError::new(400, "BadRequest", m);
    Ok(Filter {
        namespace: route.namespace.clone(),
        labels: selector::LabelSelector::parse(
            query.get("labelSelector").map_or("", String::as_str),
        )
        .map_err(bad)?,
        fields: selector::FieldSelector::parse(
            query.get("fieldSelector").map_or("", String::as_str),
        )
        .map_err(bad)?,
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = parse_query(uri.query().unwrap_or(""));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let parsed: Result<Option<Value>, String> = if body.is_empty() {
        Ok(None)
    } else {
        serde_json::from_slice::<Value>(&body)
            .or_else(|e| {
                if content_type == "application/apply-patch+yaml" {
                    serde_yaml::from_slice::<Value>(&body).map_err(|e| e.to_string())
                } else {
                    Err(e.to_string())
                }
            })
            .map(Some)
    };
    lock(&shared.requests).push(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        field_manager: query.get("fieldManager").cloned(),
        body: parsed.clone().ok().flatten(),
    });
    let body = match parsed {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::new(
                400,
                "BadRequest",
                format!("invalid body: {e}"),
            ));
        }
    };
    let Some(route) = parse_route(uri.path()) else {
        return error_response(&ApiError::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({})",
                uri.path()
            ),
        ));
    };
    if method == Method::GET
        && route.name.is_none()
        && query.get("watch").is_some_and(|w| w == "true" || w == "1")
    {
        return watch_response(shared, route, &query);
    }
    let result = {
        let mut store = lock(&shared.store);
        let r = dispatch(&mut store, &method, &route, &query, &content_type, body);
        shared.changed.send_replace(store.resource_version());
        r
    };
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error_response(&e),
    }
}

fn dispatch(
    store: &mut Store,
    method: &Method,
    route: &Route,
    query: &BTreeMap<String, String>,
    content_type: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value), ApiError> {
    let sub = match route.sub.as_deref() {
        None => Sub::Main,
        Some("status") => Sub::Status,
        Some(other) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("subresource {other:?} is not supported"),
            ));
        }
    };
    let need_body = || {
        body.clone()
            .ok_or_else(|| ApiError::new(400, "BadRequest", "a request body is required"))
    };
    let ns = route.namespace.clone().unwrap_or_default();
    let Some(name) = route.name.clone() else {
        return match *method {
            Method::GET => {
                let filter = filter_from(route, query)?;
                let (items, rv) = store.list(&route.gv, &route.plural, &filter);
                Ok((StatusCode::OK, list_body(store, route, items, rv)))
            }
            Method::POST => Ok((
                StatusCode::CREATED,
                store.create(&route.gv, &route.plural, &ns, need_body()?)?,
            )),
            Method::DELETE => {
                let filter = filter_from(route, query)?;
                let (items, _) = store.list(&route.gv, &route.plural, &filter);
                let mut deleted = Vec::new();
                for item in items {
                    let key = Key {
                        gv: route.gv.clone(),
                        plural: route.plural.clone(),
                        namespace: item
                            .pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .into(),
                        name: item
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .into(),
                    };
                    if let Ok(v) = store.delete(&key) {
                        deleted.push(v);
                    }
                }
                let rv = store.resource_version();
                Ok((StatusCode::OK, list_body(store, route, deleted, rv)))
            }
            _ => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{method} is not allowed on a collection"),
            )),
        };
    };
    let key = Key {
        gv: route.gv.clone(),
        plural: route.plural.clone(),
        namespace: ns,
        name,
    };
    let v = match *method {
        Method::GET => store.get(&key)?,
        Method::PUT => store.replace(&key, need_body()?, sub)?,
        Method::PATCH => match content_type {
            "application/apply-patch+yaml" => {
                let manager = query
                    .get("fieldManager")
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        ApiError::new(
                            400,
                            "BadRequest",
                            "fieldManager is required for apply patch",
                        )
                    })?;
                let force = query.get("force").is_some_and(|f| f == "true");
                let created = store.get(&key).is_err();
                let v = store.apply(&key, need_body()?, manager, force, sub)?;
                if created {
                    return Ok((StatusCode::CREATED, v));
                }
                v
            }
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                store.merge(&key, need_body()?, sub)?
            }
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_value(need_body()?).map_err(|e| {
                    ApiError::new(400, "BadRequest", format!("invalid JSON patch: {e}"))
                })?;
                store.json_patch(&key, &ops, sub)?
            }
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the patch content type {other:?} is not supported"),
                ));
            }
        },
        Method::DELETE if sub == Sub::Main => store.delete(&key)?,
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{method} is not allowed here"),
            ));
        }
    };
    Ok((StatusCode::OK, v))
}

fn list_body(store: &Store, route: &Route, items: Vec<Value>, rv: u64) -> Value {
    let kind = store.kind_of(&route.gv, &route.plural);
    json!({
        "apiVersion": route.gv,
        "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

fn watch_response(shared: Arc<Shared>, route: Route, query: &BTreeMap<String, String>) -> Response {
    let filter = match filter_from(&route, query) {
        Ok(f) => f,
        Err(e) => return error_response(&e),
    };
    let since = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return error_response(&ApiError::new(
                    400,
                    "BadRequest",
                    format!("invalid resourceVersion {rv:?}"),
                ));
            }
        },
    };
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);

    let mut changed = shared.changed.subscribe();
    let (initial, mut cursor) = {
        let store = lock(&shared.store);
        match since {
            Some(rv) => (Vec::new(), rv),
            None => {
                let (items, rv) = store.list(&route.gv, &route.plural, &filter);
                (items.iter().map(|o| watch_line("ADDED", o)).collect(), rv)
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        let mut first = true;
        loop {
            let (events, rv, kind) = {
                let store = lock(&shared.store);
                let (events, rv) = store.events_after(cursor, &route.gv, &route.plural, &filter);
                (events, rv, store.kind_of(&route.gv, &route.plural))
            };
            cursor = rv;
            for e in events {
                if tx.send(watch_line(e.kind, &e.object)).await.is_err() {
                    return;
                }
            }
            let bookmark = |rv: u64| {
                watch_line(
                    "BOOKMARK",
                    &json!({"apiVersion": route.gv, "kind": kind, "metadata": {"resourceVersion": rv.to_string()}}),
                )
            };
            if bookmarks && first {
                first = false;
                if tx.send(bookmark(cursor)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                () = &mut deadline => return,
                _ = tick.tick() => {
                    if bookmarks && tx.send(bookmark(cursor)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| {
            error_response(&ApiError::new(
                500,
                "InternalError",
                "building the watch response",
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cover_core_group_namespaced_and_cluster_paths() {
        let r = parse_route("/api/v1/namespaces/ns/configmaps/a").unwrap();
        assert_eq!(
            (
                r.gv.as_str(),
                r.plural.as_str(),
                r.namespace.as_deref(),
                r.name.as_deref()
            ),
            ("v1", "configmaps", Some("ns"), Some("a"))
        );
        let r = parse_route("/apis/weir.dev/v1alpha1/namespaces/ns/clusters/c/status").unwrap();
        assert_eq!(
            (r.gv.as_str(), r.sub.as_deref()),
            ("weir.dev/v1alpha1", Some("status"))
        );
        let r = parse_route("/api/v1/namespaces/ns").unwrap();
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("ns"), None)
        );
        let r = parse_route("/apis/apps/v1/statefulsets").unwrap();
        assert_eq!((r.plural.as_str(), r.name), ("statefulsets", None));
        assert!(parse_route("/apis").is_none());
        assert!(parse_route("/api/v1/namespaces/ns/configmaps/a/status/x").is_none());
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = parse_query("labelSelector=app%3Dweb%2Ctier%3Ddb&watch=true&x=%zz");
        assert_eq!(q["labelSelector"], "app=web,tier=db");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "%zz");
    }
}
