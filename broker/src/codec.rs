//! The sans-io part of the wire protocol: a frame's bytes in, a decoded
//! request (or the reason it cannot be served) out; a response in, its
//! framed bytes out. No sockets here, so the fuzz target and property tests
//! exercise exactly what the server runs.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::handlers;

/// Why a frame cannot be served; the connection that sent it is closed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {size} bytes is larger than socket.request.max.bytes ({max})")]
    FrameTooLarge { size: i64, max: usize },
    #[error("frame of {0} bytes is too short for a request header")]
    FrameTooShort(i64),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} is not served by this broker")]
    UnsupportedApi { api: ApiKey },
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
}

/// A frame the broker understood.
// Built once per frame and moved straight to its handler: boxing the big
// variant would only add an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decoded {
    Request {
        header: RequestHeader,
        api: ApiKey,
        version: i16,
        request: RequestKind,
    },
    /// ApiVersions at a version we do not know. Kafka answers it with a v0
    /// error response listing what it supports, so the client can retry
    /// with a version both sides share.
    UnsupportedApiVersions { correlation_id: i32 },
}

/// The smallest frame that holds a request header's fixed part.
const MIN_FRAME: i64 = 8;

/// Checks a frame's length prefix before any of it is read.
pub fn check_frame_size(size: i32, max: usize) -> Result<usize, DecodeError> {
    let size = size as i64;
    if size < 0 || size as u64 > max as u64 {
        return Err(DecodeError::FrameTooLarge { size, max });
    }
    if size < MIN_FRAME {
        return Err(DecodeError::FrameTooShort(size));
    }
    Ok(size as usize)
}

/// Decodes one frame (the bytes after the length prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Decoded, DecodeError> {
    if (frame.len() as i64) < MIN_FRAME {
        return Err(DecodeError::FrameTooShort(frame.len() as i64));
    }
    let raw_key = frame.slice(0..2).get_i16();
    let version = frame.slice(2..4).get_i16();
    let correlation_id = frame.slice(4..8).get_i32();
    let api = ApiKey::try_from(raw_key).map_err(|()| DecodeError::UnknownApiKey(raw_key))?;
    let (min, max) =
        handlers::supported_versions(api).ok_or(DecodeError::UnsupportedApi { api })?;
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            return Ok(Decoded::UnsupportedApiVersions { correlation_id });
        }
        return Err(DecodeError::UnsupportedVersion {
            api,
            version,
            min,
            max,
        });
    }
    let malformed = |reason: String| DecodeError::Malformed {
        api,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e:#}")))?;
    let request =
        RequestKind::decode(api, &mut frame, version).map_err(|e| malformed(format!("{e:#}")))?;
    Ok(Decoded::Request {
        header,
        api,
        version,
        request,
    })
}

/// Appends a length-prefixed response to `out`.
pub fn encode_response(
    out: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<(), String> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(out, api.response_header_version(version))
        .map_err(|e| e.to_string())?;
    response.encode(out, version).map_err(|e| e.to_string())?;
    let size = i32::try_from(out.len() - start - 4)
        .map_err(|_| "response larger than 2 GiB".to_string())?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    fn frame(api: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = 42;
        header.client_id = Some(StrBytes::from_static_str("test"));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_request_at_every_supported_version() {
        for version in 0..=12 {
            let decoded = decode_request(frame(
                ApiKey::Metadata,
                version,
                &MetadataRequest::default(),
            ))
            .unwrap();
            match decoded {
                Decoded::Request {
                    header,
                    api,
                    version: v,
                    request: RequestKind::Metadata(_),
                } => {
                    assert_eq!(
                        (api, v, header.correlation_id),
                        (ApiKey::Metadata, version, 42)
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_key_unsupported_version_and_truncation_are_refused() {
        let mut raw = BytesMut::new();
        raw.put_i16(999);
        raw.put_i16(0);
        raw.put_i32(1);
        assert!(matches!(
            decode_request(raw.freeze()),
            Err(DecodeError::UnknownApiKey(999))
        ));

        let f = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
        let mut bumped = BytesMut::from(&f[..]);
        bumped[2..4].copy_from_slice(&99i16.to_be_bytes());
        assert!(matches!(
            decode_request(bumped.freeze()),
            Err(DecodeError::UnsupportedVersion { .. })
        ));

        let f = frame(
            ApiKey::CreateTopics,
            7,
            &kafka_protocol::messages::CreateTopicsRequest::default(),
        );
        let truncated = f.slice(0..f.len() - 3);
        assert!(matches!(
            decode_request(truncated),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn apiversions_at_an_unknown_version_gets_the_fallback() {
        let f = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let mut bumped = BytesMut::from(&f[..]);
        bumped[2..4].copy_from_slice(&77i16.to_be_bytes());
        assert!(matches!(
            decode_request(bumped.freeze()),
            Ok(Decoded::UnsupportedApiVersions { correlation_id: 42 })
        ));
    }

    #[test]
    fn frame_sizes_are_bounded() {
        assert!(matches!(
            check_frame_size(-1, 100),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            check_frame_size(101, 100),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            check_frame_size(4, 100),
            Err(DecodeError::FrameTooShort(4))
        ));
        assert_eq!(check_frame_size(100, 100).unwrap(), 100);
    }

    proptest! {
        // Whatever arrives, decoding returns; it never panics.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(Bytes::from(bytes));
        }

        // A valid header followed by garbage never panics either: this is
        // where the per-API decoders get exercised.
        #[test]
        fn garbage_bodies_never_panic(key in 0i16..70, version in 0i16..14, body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut raw = BytesMut::new();
            raw.put_i16(key);
            raw.put_i16(version);
            raw.put_i32(7);
            raw.put_i16(-1);
            raw.extend_from_slice(&body);
            let _ = decode_request(raw.freeze());
        }
    }
}
