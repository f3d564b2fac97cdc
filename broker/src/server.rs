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
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::broker::BrokerState;
use crate::codec::{DecodeError, Decoded, check_frame_size, decode_request, encode_response};
use crate::handlers::{self, RequestContext};

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
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
                        state.metrics.connections_opened.fetch_add(1, Ordering::Relaxed);
                        let result = handle_connection(stream, peer, Arc::clone(&state), shutdown).await;
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
        let size = check_frame_size(size, max)?;
        let mut frame = BytesMut::zeroed(size);
        reader.read_exact(&mut frame).await?;
        let frame = frame.freeze();
        state
            .metrics
            .bytes_in
            .fetch_add(size as u64 + 4, Ordering::Relaxed);
        if frame.len() >= 2 {
            state
                .metrics
                .count_request(i16::from_be_bytes([frame[0], frame[1]]));
        }

        out.clear();
        if handle_frame(&state, peer, frame, &mut out).await? {
            writer.write_all(&out).await?;
            writer.flush().await?;
            state
                .metrics
                .bytes_out
                .fetch_add(out.len() as u64, Ordering::Relaxed);
        }
    }
}

/// Decodes, handles and encodes one request into `out`. Returns whether
/// there is a response to send (produce with acks=0 has none).
async fn handle_frame(
    state: &Arc<BrokerState>,
    peer: SocketAddr,
    frame: Bytes,
    out: &mut BytesMut,
) -> Result<bool, ConnectionError> {
    let (header, api, version, request) = match decode_request(frame)? {
        Decoded::Request {
            header,
            api,
            version,
            request,
        } => (header, api, version, request),
        Decoded::UnsupportedApiVersions { correlation_id } => {
            let response = handlers::api_versions_unsupported();
            encode_response(out, ApiKey::ApiVersions, 0, correlation_id, &response).map_err(
                |reason| ConnectionError::Handler {
                    api: ApiKey::ApiVersions,
                    reason,
                },
            )?;
            return Ok(true);
        }
    };
    let ctx = RequestContext {
        api,
        version,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        peer,
    };
    let response = handlers::handle(state, &ctx, request)
        .await
        .map_err(|reason| ConnectionError::Handler { api, reason })?;
    let Some(response) = response else {
        return Ok(false);
    };
    encode_response(out, api, version, header.correlation_id, &response).map_err(|reason| {
        ConnectionError::Handler {
            api,
            reason: format!("encoding the response: {reason}"),
        }
    })?;
    Ok(true)
}
