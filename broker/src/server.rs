//! The Kafka listener: accepts connections, splits each byte stream into
//! length-prefixed frames, decodes them with `kafka-protocol`, hands them to
//! the router and writes the responses back in order.
//!
//! A connection handles one request at a time — the next is read only after
//! the previous one was handled, which keeps the produce requests of one
//! connection in order — except that an acks=all produce, once appended,
//! waits for its followers off the request loop. Responses go out in
//! request order through a bounded queue, so a producer with several
//! requests in flight is not held to one replication round trip per
//! request (Kafka mutes the connection until the response is sent). A frame
//! that cannot be understood closes only its own connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::broker::BrokerState;
use crate::codec::{DecodeError, Decoded, check_frame_size, decode_request, encode_response};
use crate::handlers::{self, Handled, RequestContext};
use crate::quotas::{self, SenderQuotas};
use crate::sasl::{ANONYMOUS, After, ListenerSasl, Session};
use crate::tls::ListenerTls;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("handling {api:?}: {reason}")]
    Handler { api: ApiKey, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A request the SASL state does not allow (or an expired session).
    #[error("{0}")]
    Sasl(String),
}

/// How a listener secures its connections: TLS (`SSL`, `SASL_SSL`) and
/// SASL (`SASL_PLAINTEXT`, `SASL_SSL`).
#[derive(Clone, Default)]
pub struct ListenerSecurity {
    pub tls: Option<Arc<ListenerTls>>,
    pub sasl: Option<Arc<ListenerSasl>>,
}

/// Accepts connections until `shutdown` turns true.
/// `name` is the listener's (`listeners.rs`): requests that arrive
/// through it are answered with that listener's endpoints.
pub async fn serve(
    listener: TcpListener,
    name: String,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
    security: ListenerSecurity,
) {
    let name: Arc<str> = name.into();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = Arc::clone(&state);
                    let shutdown = shutdown.clone();
                    let listener = Arc::clone(&name);
                    let security = security.clone();
                    tokio::spawn(async move {
                        state.metrics.connections_opened.fetch_add(1, Ordering::Relaxed);
                        let result = handle_connection(stream, peer, listener, Arc::clone(&state), shutdown, security).await;
                        state.metrics.connections_closed.fetch_add(1, Ordering::Relaxed);
                        match result {
                            Ok(()) => debug!(%peer, "connection closed"),
                            Err(ConnectionError::Io(e)) => debug!(%peer, error = %e, "connection ended"),
                            Err(e) => warn!(%peer, error = %e, "closing connection"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the
                    // connections we have and try again shortly.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    info!("listener stopped");
}

/// Responses a connection may owe at once; the request loop waits when
/// this many are queued (a producer's in-flight requests fit well within).
const MAX_QUEUED_RESPONSES: usize = 32;

/// A response in a connection's queue: bytes now, or a task whose bytes
/// come when the followers have caught up.
enum Queued {
    Ready(Bytes),
    Waiting(JoinHandle<Result<Bytes, ConnectionError>>),
}

/// The first byte of the HTTP/2 connection preface (`PRI * HTTP/2.0…`).
/// Read as the top byte of a Kafka frame size it would mean a frame over
/// 1.3 GB, which no Kafka client sends (and the broker refuses anyway).
const HTTP2_PREFACE_START: u8 = b'P';

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
    security: ListenerSecurity,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    let session = security.sasl.map(Session::new);
    if let Some(tls) = security.tls {
        return serve_tls(stream, peer, listener, state, shutdown, &tls, session).await;
    }
    if session.is_some() {
        // The task-group service has no login of its own: it is not
        // offered where clients must log in.
        let conn = ConnectionState::new(peer, listener, session, ANONYMOUS.into());
        return serve_kafka(stream, conn, state, shutdown).await;
    }
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        peeked = stream.peek(&mut first) => peeked?,
        _ = shutdown.changed() => return Ok(()),
    };
    if peeked == 1 && first[0] == HTTP2_PREFACE_START {
        // A task-group member: the gRPC server takes the connection over.
        debug!(%peer, "HTTP/2 connection: task-group service");
        return state
            .grpc
            .send(stream)
            .await
            .map_err(|_| std::io::Error::other("the task-group service has stopped").into());
    }
    let conn = ConnectionState::new(peer, listener, None, ANONYMOUS.into());
    serve_kafka(stream, conn, state, shutdown).await
}

/// The TLS handshake, then the Kafka protocol over it.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
    tls: &ListenerTls,
    session: Option<Session>,
) -> Result<(), ConnectionError> {
    // rustls pulls at most a TLS record (~16 KiB) per read: a buffer
    // under it turns a large produce into a few big socket reads.
    let buffered = tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, stream);
    // A client that connects and says nothing must not hold a task for
    // ever.
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(buffered));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "TLS handshake failed");
                return Ok(());
            }
            Err(_) => {
                debug!(%peer, "TLS handshake timed out");
                return Ok(());
            }
        },
        _ = shutdown.changed() => return Ok(()),
    };
    // Where clients log in, the login decides the principal (Kafka's
    // SASL_SSL); elsewhere the client certificate does.
    let principal = if session.is_some() {
        ANONYMOUS.to_owned()
    } else {
        match tls.principal(stream.get_ref().1.peer_certificates()) {
            Ok(principal) => principal,
            Err(refused) => {
                let reason = refused.reason;
                if refused.seen_before {
                    debug!(%peer, %reason, "refusing the client certificate: closing the connection");
                } else {
                    warn!(%peer, %reason, "refusing the client certificate: closing the connection (said once per subject)");
                }
                return Ok(());
            }
        }
    };
    let conn = ConnectionState::new(peer, listener, session, principal.into());
    serve_kafka(stream, conn, state, shutdown).await
}

/// Bytes read from a TLS connection's socket at a time.
const TLS_READ_BUFFER: usize = 256 * 1024;

/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The Kafka protocol over a connection, plain or TLS.
async fn serve_kafka<S>(
    stream: S,
    conn: ConnectionState,
    state: Arc<BrokerState>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let (queue, queued) = mpsc::channel(MAX_QUEUED_RESPONSES);
    let reading = read_requests(reader, conn, Arc::clone(&state), shutdown, queue);
    let writing = write_responses(writer, &state, queued);
    tokio::try_join!(reading, writing).map(|_| ())
}

/// Who is at the other end of a connection and how they logged in.
struct ConnectionState {
    peer: SocketAddr,
    listener: Arc<str>,
    /// On SASL listeners.
    session: Option<Session>,
    /// `User:<name>` once logged in (SASL) or from the client
    /// certificate (SSL), else `User:ANONYMOUS`.
    principal: Arc<str>,
}

impl ConnectionState {
    fn new(
        peer: SocketAddr,
        listener: Arc<str>,
        session: Option<Session>,
        principal: Arc<str>,
    ) -> Self {
        ConnectionState {
            peer,
            listener,
            session,
            principal,
        }
    }
}

/// Reads, decodes and handles requests in order, queueing their responses.
async fn read_requests(
    mut reader: impl AsyncRead + Unpin,
    mut conn: ConnectionState,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
    queue: mpsc::Sender<Queued>,
) -> Result<(), ConnectionError> {
    let socket_max = state.config.socket_request_max_bytes();
    loop {
        let max = conn
            .session
            .as_ref()
            .map_or(socket_max, |s| s.max_frame(socket_max));
        let size = tokio::select! {
            read = reader.read_i32() => match read {
                Ok(size) => size,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let size = check_frame_size(size, max)?;
        let mut frame = BytesMut::zeroed(size);
        reader.read_exact(&mut frame).await?;
        let frame = frame.freeze();
        state
            .metrics
            .bytes_in
            .fetch_add(size as u64 + 4, Ordering::Relaxed);
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        state.metrics.count_request(raw_key);
        if let (Some(session), Ok(api)) = (&conn.session, ApiKey::try_from(raw_key)) {
            session
                .admit(api, Instant::now())
                .map_err(ConnectionError::Sasl)?;
        }
        let (response, close, throttle) = handle_frame(&state, &mut conn, frame).await?;
        let next = match response {
            Response::None => None,
            Response::Ready(bytes) => Some(Queued::Ready(bytes)),
            Response::Waiting(task) => Some(Queued::Waiting(tokio::spawn(task))),
        };
        if let Some(next) = next
            && queue.send(next).await.is_err()
        {
            // The writer stopped (its error is what the connection reports).
            return Ok(());
        }
        if !throttle.is_zero() {
            // Over a quota: the connection is muted for the throttle time
            // (the answer, already queued, still goes out).
            tokio::select! {
                _ = tokio::time::sleep(throttle) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
        if close == After::Close {
            // The answer (a failed login) goes out, then the connection ends.
            debug!(peer = %conn.peer, "SASL authentication failed: closing the connection");
            return Ok(());
        }
    }
}

/// Writes queued responses in request order, waiting for each in turn.
async fn write_responses(
    writer: impl AsyncWrite + Unpin,
    state: &BrokerState,
    mut queued: mpsc::Receiver<Queued>,
) -> Result<(), ConnectionError> {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(next) = queued.recv().await {
        let bytes = match next {
            Queued::Ready(bytes) => bytes,
            Queued::Waiting(task) => task.await.map_err(|e| ConnectionError::Handler {
                api: ApiKey::Produce,
                reason: format!("waiting for replication: {e}"),
            })??,
        };
        writer.write_all(&bytes).await?;
        // Flush when nothing else is ready to go, so responses that are
        // already due share one write.
        if queued.is_empty() {
            writer.flush().await?;
        }
        state
            .metrics
            .bytes_out
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    writer.flush().await?;
    Ok(())
}

/// What handling one frame produced.
enum Response {
    /// Nothing to send (produce with acks=0).
    None,
    Ready(Bytes),
    Waiting(
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, ConnectionError>> + Send>>,
    ),
}

/// Decodes and handles one request, encoding its response (now or, for
/// a waiting acks=all produce, when it completes).
async fn handle_frame(
    state: &Arc<BrokerState>,
    conn: &mut ConnectionState,
    frame: Bytes,
) -> Result<(Response, After, Duration), ConnectionError> {
    let request_bytes = frame.len();
    let (header, api, version, request) = match decode_request(frame)? {
        Decoded::Request {
            header,
            api,
            version,
            request,
        } => (header, api, version, request),
        Decoded::UnsupportedApiVersions { correlation_id } => {
            let response = handlers::api_versions_unsupported();
            return encode(ApiKey::ApiVersions, 0, correlation_id, &response)
                .map(|b| (Response::Ready(b), After::Continue, Duration::ZERO));
        }
    };
    let correlation_id = header.correlation_id;
    let request = match sasl_request(state, conn, request) {
        Ok(request) => request,
        Err((response, after)) => {
            let bytes = encode(api, version, correlation_id, &response)?;
            return Ok((Response::Ready(bytes), after, Duration::ZERO));
        }
    };
    let ctx = RequestContext {
        api,
        version,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        peer: conn.peer,
        listener: Arc::clone(&conn.listener),
        principal: Arc::clone(&conn.principal),
    };
    let sender = if quota_exempt(&ctx, &request) {
        SenderQuotas::default()
    } else {
        let image = state.cluster.image();
        state
            .quotas
            .for_sender(image.quotas(), &ctx.principal, &ctx.client_id)
    };
    let (handled, used) = if sender.request.is_some() {
        quotas::cpu_timed(handlers::handle(state, &ctx, request)).await
    } else {
        (handlers::handle(state, &ctx, request).await, Duration::ZERO)
    };
    let handled = handled.map_err(|reason| ConnectionError::Handler { api, reason })?;
    let mut throttle = Duration::ZERO;
    if let Some(limit) = &sender.request {
        throttle = throttle.max(state.quotas.record_time(limit, used));
    }
    if let (ApiKey::Produce, Some(limit)) = (api, &sender.produce) {
        throttle = throttle.max(state.quotas.record_bytes(limit, request_bytes));
    }
    let response = match handled {
        Handled::Now(None) => Response::None,
        Handled::Now(Some(mut response)) => {
            if let (ApiKey::Fetch, Some(limit)) = (api, &sender.fetch) {
                throttle = throttle.max(throttle_fetch(state, limit, throttle, &mut response));
            }
            quotas::set_throttle_time(&mut response, throttle);
            Response::Ready(encode(api, version, correlation_id, &response)?)
        }
        Handled::Later(wait) => Response::Waiting(Box::pin(async move {
            let mut response = wait.await;
            quotas::set_throttle_time(&mut response, throttle);
            encode(api, version, correlation_id, &response)
        })),
    };
    Ok((response, After::Continue, throttle))
}

/// Requests no client quota applies to: logins, and brokers' own traffic
/// (follower fetches, transaction markers, and Kafka's internal client
/// ids, which start with `__`).
fn quota_exempt(ctx: &RequestContext, request: &RequestKind) -> bool {
    match request {
        RequestKind::SaslHandshake(_)
        | RequestKind::SaslAuthenticate(_)
        | RequestKind::WriteTxnMarkers(_) => true,
        RequestKind::Fetch(req) => req.replica_id.0 >= 0 || req.replica_state.replica_id.0 >= 0,
        _ => ctx.client_id.starts_with("__"),
    }
}

/// Records a fetch answer's bytes against the sender's fetch quota. A
/// sender over it (or already throttled for its request time) gets the
/// answer without records, which then do not count (Kafka's throttled
/// fetch response); the throttle time for the fetch quota.
fn throttle_fetch(
    state: &BrokerState,
    limit: &quotas::Limit,
    throttled: Duration,
    response: &mut ResponseKind,
) -> Duration {
    let bytes = quotas::fetched_bytes(response);
    let throttle = state.quotas.record_bytes(limit, bytes);
    if !throttle.is_zero() || !throttled.is_zero() {
        state.quotas.unrecord_bytes(limit, bytes);
        quotas::drop_fetched_records(response);
    }
    throttle
}

/// Answers SaslHandshake and SaslAuthenticate from the connection's
/// session (`Err`: the answer); passes every other request on.
fn sasl_request(
    state: &BrokerState,
    conn: &mut ConnectionState,
    request: RequestKind,
) -> Result<RequestKind, (ResponseKind, After)> {
    match (request, conn.session.as_mut()) {
        (RequestKind::SaslHandshake(req), Some(session)) => {
            let (response, after) = session.handshake(&req);
            Err((ResponseKind::SaslHandshake(response), after))
        }
        (RequestKind::SaslAuthenticate(req), Some(session)) => {
            let (response, after) =
                session.authenticate(&req, &*state.cluster.image(), Instant::now());
            // Kept per connection, so requests share it rather than each
            // allocating its own.
            if let Some(p) = session.principal()
                && *conn.principal != *p
            {
                conn.principal = p.into();
            }
            Err((ResponseKind::SaslAuthenticate(response), after))
        }
        // A listener without SASL: there is nothing to log in to.
        (RequestKind::SaslHandshake(_), None) => {
            let mut response = kafka_protocol::messages::SaslHandshakeResponse::default();
            response.error_code = ResponseError::IllegalSaslState.code();
            Err((ResponseKind::SaslHandshake(response), After::Close))
        }
        (RequestKind::SaslAuthenticate(_), None) => {
            let mut response = kafka_protocol::messages::SaslAuthenticateResponse::default();
            response.error_code = ResponseError::IllegalSaslState.code();
            response.error_message = Some(kafka_protocol::protocol::StrBytes::from_static_str(
                "this listener does not use SASL",
            ));
            Err((ResponseKind::SaslAuthenticate(response), After::Close))
        }
        (other, _) => Ok(other),
    }
}

fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<Bytes, ConnectionError> {
    let mut out = BytesMut::new();
    encode_response(&mut out, api, version, correlation_id, response).map_err(|reason| {
        ConnectionError::Handler {
            api,
            reason: format!("encoding the response: {reason}"),
        }
    })?;
    Ok(out.freeze())
}
