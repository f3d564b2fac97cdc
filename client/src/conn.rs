//! One framed, pipelined connection to one broker.
//!
//! Requests are written in the order `send` is called by a writer task, and a
//! reader task routes each response to its caller by correlation id, so many
//! requests can be outstanding on one socket (Kafka answers them in order).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Request, StrBytes, VersionRange,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Responses above this are refused rather than allocated: a corrupt length
/// prefix must not make us reserve gigabytes.
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

type Waiter = oneshot::Sender<Result<Bytes>>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<i32, Waiter>,
    /// Set once the socket failed; later requests fail fast with this reason.
    dead: Option<String>,
}

impl Pending {
    fn fail_all(&mut self, addr: &str, reason: String) {
        for (_, w) in self.waiters.drain() {
            let _ = w.send(Err(Error::Disconnected {
                addr: addr.to_string(),
                reason: reason.clone(),
            }));
        }
        self.dead.get_or_insert(reason);
    }
}

pub struct Connection {
    addr: String,
    client_id: StrBytes,
    request_timeout: Duration,
    out: mpsc::UnboundedSender<Bytes>,
    pending: Arc<Mutex<Pending>>,
    next_correlation_id: AtomicI32,
    /// Broker's supported (min, max) per api key, from ApiVersions.
    versions: OnceLock<HashMap<i16, (i16, i16)>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The reader would otherwise keep the socket open forever.
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Picks the highest version both sides speak.
pub fn negotiate(
    api: ApiKey,
    ours: VersionRange,
    broker: Option<(i16, i16)>,
    addr: &str,
) -> Result<i16> {
    let unsupported = || Error::UnsupportedVersion {
        api: format!("{api:?}"),
        addr: addr.to_string(),
        ours_min: ours.min,
        ours_max: ours.max,
        broker,
    };
    let (bmin, bmax) = broker.ok_or_else(unsupported)?;
    let max = ours.max.min(bmax);
    if max < ours.min.max(bmin) {
        return Err(unsupported());
    }
    Ok(max)
}

impl Connection {
    /// Opens a TCP connection and performs the ApiVersions handshake.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        request_timeout: Duration,
    ) -> Result<Arc<Connection>> {
        Self::connect_with(addr, client_id, request_timeout, None).await
    }

    /// Like [`connect`](Self::connect), over TLS when `tls` is given (the
    /// handshake within the request timeout too).
    pub async fn connect_with(
        addr: &str,
        client_id: &str,
        request_timeout: Duration,
        tls: Option<&crate::tls::TlsSettings>,
    ) -> Result<Arc<Connection>> {
        let connect_err = |reason: String| Error::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = match tokio::time::timeout(request_timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(connect_err(format!(
                    "no answer within {} ms",
                    request_timeout.as_millis()
                )));
            }
            Ok(Err(e)) => return Err(connect_err(io_reason(&e))),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls else {
            return Self::handshake(stream, addr, client_id, request_timeout).await;
        };
        let (connector, name) = tls.connector(addr)?;
        let stream =
            match tokio::time::timeout(request_timeout, connector.connect(name, stream)).await {
                Err(_) => {
                    return Err(connect_err(format!(
                        "no TLS handshake within {} ms",
                        request_timeout.as_millis()
                    )));
                }
                Ok(Err(e)) => return Err(connect_err(format!("TLS handshake failed: {e}"))),
                Ok(Ok(s)) => s,
            };
        Self::handshake(stream, addr, client_id, request_timeout).await
    }

    /// Starts the connection tasks over any byte stream and asks the broker
    /// which versions it speaks.
    pub async fn handshake<S>(
        stream: S,
        addr: &str,
        client_id: &str,
        request_timeout: Duration,
    ) -> Result<Arc<Connection>>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let conn = Arc::new(Self::spawn_io(stream, addr, client_id, request_timeout));
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("weir-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp: ApiVersionsResponse = conn.send_version(&req, 3, request_timeout).await?;
        if resp.error_code == kafka_protocol::error::ResponseError::UnsupportedVersion.code() {
            // Old brokers answer an unknown ApiVersions version in v0 form and
            // list what they do support; v0 is understood by all of them.
            resp = conn
                .send_version(&ApiVersionsRequest::default(), 0, request_timeout)
                .await?;
        }
        crate::error::check(resp.error_code, None, || format!("ApiVersions to {addr}"))?;
        let map = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        let _ = conn.versions.set(map);
        Ok(conn)
    }

    fn spawn_io<S>(stream: S, addr: &str, client_id: &str, request_timeout: Duration) -> Connection
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let (out, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
        let pending = Arc::new(Mutex::new(Pending::default()));

        let w_pending = pending.clone();
        let w_addr = addr.to_string();
        let writer = tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if let Err(e) = wr.write_all(&frame).await {
                    lock(&w_pending).fail_all(&w_addr, io_reason(&e));
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });

        let r_pending = pending.clone();
        let r_addr = addr.to_string();
        let reader = tokio::spawn(async move {
            let reason = loop {
                match read_frame(&mut rd).await {
                    Ok(frame) => {
                        if frame.len() < 4 {
                            break "response shorter than its header".to_string();
                        }
                        let correlation_id = (&frame[..4]).get_i32();
                        let waiter = lock(&r_pending).waiters.remove(&correlation_id);
                        match waiter {
                            Some(w) => {
                                let _ = w.send(Ok(frame));
                            }
                            // The caller gave up (timeout); nothing to route to.
                            None => {
                                tracing::debug!(addr = %r_addr, correlation_id, "response nobody waits for")
                            }
                        }
                    }
                    Err(reason) => break reason,
                }
            };
            lock(&r_pending).fail_all(&r_addr, reason);
        });

        Connection {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            request_timeout,
            out,
            pending,
            next_correlation_id: AtomicI32::new(1),
            versions: OnceLock::new(),
            tasks: vec![writer, reader],
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_alive(&self) -> bool {
        lock(&self.pending).dead.is_none()
    }

    /// The version we will use for `R` on this connection.
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        let api = api_key::<R>();
        let broker = self.versions.get().and_then(|v| v.get(&R::KEY).copied());
        negotiate(api, R::VERSIONS, broker, &self.addr)
    }

    /// Whether the broker speaks `R` at all.
    pub fn supports<R: Request>(&self) -> bool {
        self.version_for::<R>().is_ok()
    }

    pub async fn send<R: Request>(&self, req: &R) -> Result<R::Response> {
        self.send_timeout(req, self.request_timeout).await
    }

    /// For requests the broker may legitimately hold (long-poll Fetch,
    /// JoinGroup during a rebalance).
    pub async fn send_timeout<R: Request>(
        &self,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.send_version(req, version, timeout).await
    }

    /// The negotiated version, but at most `max`: for APIs whose newer
    /// versions identify topics by id only, where we keep using names.
    pub fn capped_version<R: Request>(&self, max: i16) -> Result<i16> {
        let v = self.version_for::<R>()?;
        if v <= max {
            return Ok(v);
        }
        let (bmin, _) = self
            .versions
            .get()
            .and_then(|m| m.get(&R::KEY).copied())
            .unwrap_or((0, 0));
        if bmin.max(R::VERSIONS.min) > max {
            return Err(Error::UnsupportedVersion {
                api: format!("{:?}", api_key::<R>()),
                addr: self.addr.clone(),
                ours_min: R::VERSIONS.min,
                ours_max: max,
                broker: self.versions.get().and_then(|m| m.get(&R::KEY).copied()),
            });
        }
        Ok(max)
    }

    pub async fn send_version<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.begin(req, version, timeout)?.wait().await
    }

    /// Queues the request for writing right away (so requests begun in some
    /// order are written in that order) and returns its pending answer.
    pub fn begin<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<PendingResponse<R::Response>> {
        let api = api_key::<R>();
        let (correlation_id, frame) = self.encode(req, version)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut p = lock(&self.pending);
            if let Some(reason) = &p.dead {
                return Err(Error::Disconnected {
                    addr: self.addr.clone(),
                    reason: reason.clone(),
                });
            }
            p.waiters.insert(correlation_id, tx);
        }
        if self.out.send(frame).is_err() {
            lock(&self.pending).waiters.remove(&correlation_id);
            return Err(Error::Disconnected {
                addr: self.addr.clone(),
                reason: "writer stopped".into(),
            });
        }
        Ok(PendingResponse {
            rx,
            api,
            version,
            timeout,
            correlation_id,
            addr: self.addr.clone(),
            pending: self.pending.clone(),
            _resp: std::marker::PhantomData,
        })
    }

    /// Writes a request whose response the broker never sends (Produce with
    /// acks=0).
    pub fn send_no_response<R: Request>(&self, req: &R, version: i16) -> Result<()> {
        if let Some(reason) = &lock(&self.pending).dead {
            return Err(Error::Disconnected {
                addr: self.addr.clone(),
                reason: reason.clone(),
            });
        }
        let (_, frame) = self.encode(req, version)?;
        self.out.send(frame).map_err(|_| Error::Disconnected {
            addr: self.addr.clone(),
            reason: "writer stopped".into(),
        })
    }

    fn encode<R: Request>(&self, req: &R, version: i16) -> Result<(i32, Bytes)> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0);
        let res = header
            .encode(&mut buf, R::header_version(version))
            .and_then(|_| req.encode(&mut buf, version));
        if let Err(e) = res {
            return Err(Error::Protocol {
                addr: self.addr.clone(),
                reason: format!("encoding {:?} v{version}: {e}", api_key::<R>()),
            });
        }
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok((correlation_id, buf.freeze()))
    }
}

/// A request on the wire whose response has not been read yet.
pub struct PendingResponse<T> {
    rx: oneshot::Receiver<Result<Bytes>>,
    api: ApiKey,
    version: i16,
    timeout: Duration,
    correlation_id: i32,
    addr: String,
    pending: Arc<Mutex<Pending>>,
    _resp: std::marker::PhantomData<fn() -> T>,
}

impl<T: Decodable + HeaderVersion> PendingResponse<T> {
    pub async fn wait(self) -> Result<T> {
        let (api, version, addr) = (self.api, self.version, self.addr);
        let mut bytes = match tokio::time::timeout(self.timeout, self.rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => {
                return Err(Error::Disconnected {
                    addr,
                    reason: "connection closed".into(),
                });
            }
            Err(_) => {
                // A broker that does not answer in time is taken as gone
                // (Kafka's clients disconnect too): later requests fail fast
                // and go elsewhere instead of waiting on it again.
                let mut pending = lock(&self.pending);
                pending.waiters.remove(&self.correlation_id);
                pending.fail_all(
                    &addr,
                    format!(
                        "{api:?} got no answer within {} ms",
                        self.timeout.as_millis()
                    ),
                );
                drop(pending);
                return Err(Error::Timeout {
                    api: format!("{api:?}"),
                    addr,
                    millis: self.timeout.as_millis(),
                });
            }
        };
        let proto = |e: String| Error::Protocol {
            addr: addr.clone(),
            reason: format!("decoding {api:?} v{version}: {e}"),
        };
        ResponseHeader::decode(&mut bytes, T::header_version(version))
            .map_err(|e| proto(e.to_string()))?;
        T::decode(&mut bytes, version).map_err(|e| proto(e.to_string()))
    }
}

fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
}

async fn read_frame<R: AsyncRead + Unpin>(rd: &mut R) -> std::result::Result<Bytes, String> {
    let len = match rd.read_i32().await {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err("closed by the broker".into());
        }
        Err(e) => return Err(io_reason(&e)),
    };
    if len < 0 || len as usize > MAX_FRAME_BYTES {
        return Err(format!("response length {len} out of range"));
    }
    let mut buf = vec![0u8; len as usize];
    rd.read_exact(&mut buf).await.map_err(|e| io_reason(&e))?;
    Ok(Bytes::from(buf))
}

/// `connection refused` reads better than `Connection refused (os error 111)`.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
        | AddrNotAvailable | BrokenPipe | TimedOut | UnexpectedEof => e.kind().to_string(),
        _ => e.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map half-updated in a
    // way that matters more than losing the connection, so keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    use kafka_protocol::protocol::Decodable;

    /// A tiny in-memory broker: reads framed requests, answers each through
    /// `answer(api_key, version, correlation_id, body)` (None = no answer).
    pub fn fake_broker<F>(answer: F) -> tokio::io::DuplexStream
    where
        F: Fn(i16, i16, Bytes) -> Option<Bytes> + Send + Sync + 'static,
    {
        let (client, server) = tokio::io::duplex(1 << 20);
        tokio::spawn(serve_fake(server, Arc::new(answer)));
        client
    }

    /// A fake broker on a 127.0.0.1 port, for clients that open their own
    /// connections. `make` gets the port (to advertise in metadata) and
    /// returns the answer function every connection shares.
    pub async fn fake_tcp_broker<F>(make: impl FnOnce(u16) -> F) -> u16
    where
        F: Fn(i16, i16, Bytes) -> Option<Bytes> + Send + Sync + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(make(port));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_fake(stream, Arc::clone(&answer)));
            }
        });
        port
    }

    /// Answers framed requests on one stream until it closes.
    pub async fn serve_fake<S, F>(mut server: S, answer: Arc<F>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: Fn(i16, i16, Bytes) -> Option<Bytes> + Send + Sync + 'static,
    {
        while let Ok(mut frame) = read_frame(&mut server).await {
            let api = (&frame[0..2]).get_i16();
            let version = (&frame[2..4]).get_i16();
            let key = ApiKey::try_from(api).unwrap();
            let header =
                RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
            let Some(body) = answer(api, version, frame) else {
                continue;
            };
            let mut out = BytesMut::new();
            out.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, key.response_header_version(version))
                .unwrap();
            out.extend_from_slice(&body);
            let len = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&len.to_be_bytes());
            if server.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    pub fn encode_msg<M: Encodable>(m: &M, version: i16) -> Bytes {
        let mut b = BytesMut::new();
        m.encode(&mut b, version).unwrap();
        b.freeze()
    }

    pub fn api_versions_body(version: i16, metadata_max: i16) -> Bytes {
        let keys = vec![
            ApiVersion::default()
                .with_api_key(18)
                .with_min_version(0)
                .with_max_version(4),
            ApiVersion::default()
                .with_api_key(3)
                .with_min_version(0)
                .with_max_version(metadata_max),
        ];
        encode_msg(&ApiVersionsResponse::default().with_api_keys(keys), version)
    }

    #[test]
    fn negotiation_takes_highest_common_version() {
        let ours = VersionRange { min: 3, max: 13 };
        assert_eq!(
            negotiate(ApiKey::Produce, ours, Some((0, 9)), "b").unwrap(),
            9
        );
        assert_eq!(
            negotiate(ApiKey::Produce, ours, Some((0, 20)), "b").unwrap(),
            13
        );
        assert!(negotiate(ApiKey::Produce, ours, Some((0, 2)), "b").is_err());
        assert!(negotiate(ApiKey::Produce, ours, Some((14, 20)), "b").is_err());
        assert!(negotiate(ApiKey::Produce, ours, None, "b").is_err());
    }

    #[tokio::test]
    async fn pipelined_requests_are_matched_by_correlation_id() {
        let stream = fake_broker(|api, version, mut body| match api {
            18 => Some(api_versions_body(version, 7)),
            3 => {
                let req = MetadataRequest::decode(&mut body, version).unwrap();
                // Echo the requested topic count as the controller id so the
                // test can tell the answers apart.
                let n = req.topics.map(|t| t.len()).unwrap_or(0) as i32;
                Some(encode_msg(
                    &MetadataResponse::default().with_controller_id(n.into()),
                    version,
                ))
            }
            _ => None,
        });
        let conn = Connection::handshake(stream, "fake:1", "test", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(conn.version_for::<MetadataRequest>().unwrap(), 7);
        let reqs: Vec<MetadataRequest> = (0..20)
            .map(|n| {
                let topics = (0..n)
                    .map(|i| {
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(StrBytes::from_string(format!("t{i}")).into()))
                    })
                    .collect();
                MetadataRequest::default().with_topics(Some(topics))
            })
            .collect();
        let version = conn.version_for::<MetadataRequest>().unwrap();
        let pending: Vec<_> = reqs
            .iter()
            .map(|r| conn.begin(r, version, Duration::from_secs(5)).unwrap())
            .collect();
        let mut got = Vec::new();
        // Await in reverse: answers must still reach the right caller.
        for (i, p) in pending.into_iter().enumerate().rev() {
            got.push((i as i32, *p.wait().await.unwrap().controller_id));
        }
        for (want, have) in got {
            assert_eq!(want, have);
        }
    }

    #[tokio::test]
    async fn unanswered_request_times_out_and_dead_socket_fails_fast() {
        let stream =
            fake_broker(|api, version, _| (api == 18).then(|| api_versions_body(version, 9)));
        let conn = Connection::handshake(stream, "fake:1", "test", Duration::from_secs(5))
            .await
            .unwrap();
        let err = conn
            .send_timeout(&MetadataRequest::default(), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(
            !conn.is_alive(),
            "an unanswering broker's connection is dropped"
        );

        let (client, server) = tokio::io::duplex(64);
        drop(server);
        let err = Connection::handshake(client, "gone:1", "test", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Disconnected { .. }), "{err}");
    }

    #[tokio::test]
    async fn oversized_frame_is_refused() {
        let (client, mut server) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let mut b = [0u8; 4];
            let _ = server.read_exact(&mut b).await;
            let _ = server.write_all(&(i32::MAX).to_be_bytes()).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let err = Connection::handshake(client, "big:1", "test", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }
}
