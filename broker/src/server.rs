//! The Kafka listener: accepts connections, splits each byte stream into
//! length-prefixed frames, decodes them with `kafka-protocol`, hands them to
//! the router and writes the responses back in order.
//!
//! Like Kafka, a connection handles one request at a time (the next is read
//! only after the previous one's response is queued), which is what keeps
//! the produce requests of one connection in order. A frame that cannot be
//! understood closes only its own connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::broker::BrokerState;
use crate::handlers::{self, RequestContext};

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("frame of {size} bytes is larger than socket.request.max.bytes ({max})")]
    FrameTooLarge { size: i64, max: usize },
    #[error("frame of {0} bytes is too short for a request header")]
    FrameTooShort(i32),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} version {version} is not supported (supported: {min}..={max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("handling {api:?}: {reason}")]
    Handler { api: ApiKey, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = Arc::clone(&state);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        match handle_connection(stream, peer, state, shutdown).await {
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

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let max = state.config.socket_request_max_bytes();
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        let size = tokio::select! {
            read = reader.read_i32() => match read {
                Ok(size) => size,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        if size < 0 || size as usize > max {
            return Err(ConnectionError::FrameTooLarge {
                size: size as i64,
                max,
            });
        }
        if size < 8 {
            return Err(ConnectionError::FrameTooShort(size));
        }
        let mut frame = BytesMut::zeroed(size as usize);
        reader.read_exact(&mut frame).await?;
        let frame = frame.freeze();

        out.clear();
        if let Some(()) = handle_frame(&state, peer, frame, &mut out).await? {
            writer.write_all(&out).await?;
            writer.flush().await?;
        }
    }
}

/// Decodes, handles and encodes one request. `Ok(None)` means the request
/// wants no response (produce with acks=0).
async fn handle_frame(
    state: &Arc<BrokerState>,
    peer: SocketAddr,
    mut frame: Bytes,
    out: &mut BytesMut,
) -> Result<Option<()>, ConnectionError> {
    let raw_key = frame.slice(0..2).get_i16();
    let version = frame.slice(2..4).get_i16();
    let correlation_id = frame.slice(4..8).get_i32();
    let api = ApiKey::try_from(raw_key).map_err(|()| ConnectionError::UnknownApiKey(raw_key))?;
    let Some(range) = handlers::supported_versions(api) else {
        return Err(ConnectionError::UnsupportedVersion {
            api,
            version,
            min: -1,
            max: -1,
        });
    };
    if version < range.0 || version > range.1 {
        if api == ApiKey::ApiVersions {
            // Clients probe with their newest ApiVersions; Kafka answers a
            // version it does not know with a v0 error response listing what
            // it supports, so the client can retry with a version we share.
            encode_response(
                out,
                api,
                0,
                correlation_id,
                handlers::api_versions_unsupported(),
            )?;
            return Ok(Some(()));
        }
        return Err(ConnectionError::UnsupportedVersion {
            api,
            version,
            min: range.0,
            max: range.1,
        });
    }
    let malformed = |reason: String| ConnectionError::Malformed {
        api,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| malformed(e.to_string()))?;
    let request =
        RequestKind::decode(api, &mut frame, version).map_err(|e| malformed(format!("{e:#}")))?;
    if frame.has_remaining() {
        debug!(
            ?api,
            version,
            extra = frame.remaining(),
            "request has trailing bytes"
        );
    }
    let ctx = RequestContext {
        api,
        version,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        peer,
    };
    let response = handlers::handle(state, &ctx, request)
        .await
        .map_err(|reason| ConnectionError::Handler { api, reason })?;
    match response {
        Some(response) => {
            encode_response(out, api, version, correlation_id, response)?;
            Ok(Some(()))
        }
        None => Ok(None),
    }
}

fn encode_response(
    out: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: kafka_protocol::messages::ResponseKind,
) -> Result<(), ConnectionError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let failed = |reason: String| ConnectionError::Handler {
        api,
        reason: format!("encoding the response: {reason}"),
    };
    header
        .encode(out, api.response_header_version(version))
        .map_err(|e| failed(e.to_string()))?;
    response
        .encode(out, version)
        .map_err(|e| failed(e.to_string()))?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}
