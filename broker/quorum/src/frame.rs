//! Length-prefixed JSON frames, the unit of the controller listener's wire
//! format: a 4-byte big-endian body length, then the body as `serde_json`.
//!
//! The length is checked against a limit before anything is allocated, so a
//! corrupt or hostile header cannot make a node reserve gigabytes.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Default largest frame body: comfortably above an openraft snapshot chunk
/// (3 MiB of bytes, about 4x that as a JSON number array) and any batch of
/// metadata entries.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

const HEADER: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed frame: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The peer closed the connection at a frame boundary.
    #[error("connection closed by peer")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `msg` as one frame (header and body), refusing bodies over `limit`.
pub fn encode<T: Serialize>(msg: &T, limit: usize) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0; HEADER];
    serde_json::to_writer(&mut frame, msg).map_err(FrameError::Malformed)?;
    let len = frame.len() - HEADER;
    let header = body_len_header(len, limit)?;
    frame[..HEADER].copy_from_slice(&header);
    Ok(frame)
}

fn body_len_header(len: usize, limit: usize) -> Result<[u8; HEADER], FrameError> {
    let too_large = FrameError::TooLarge { len, limit };
    if len > limit {
        return Err(too_large);
    }
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| too_large)
}

/// The body length a header announces, if within `limit`.
pub fn decode_len(header: [u8; HEADER], limit: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    Ok(len)
}

pub async fn write_frame<W, T>(w: &mut W, msg: &T, limit: usize) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let frame = encode(msg, limit)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame. A clean end of stream before the header is `Closed`;
/// one inside a frame is an I/O error (a torn frame).
pub async fn read_frame<R, T>(r: &mut R, limit: usize) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut header = [0u8; HEADER];
    let mut filled = 0;
    while filled < HEADER {
        match r.read(&mut header[filled..]).await? {
            0 if filled == 0 => return Err(FrameError::Closed),
            0 => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            n => filled += n,
        }
    }
    let len = decode_len(header, limit)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(FrameError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_limits_are_enforced_both_ways() {
        let msg = vec!["metadata".to_owned(); 3];
        let frame = encode(&msg, 1024).unwrap();
        assert_eq!(
            decode_len(frame[..4].try_into().unwrap(), 1024).unwrap(),
            frame.len() - 4
        );
        let back: Vec<String> = read_frame(&mut frame.as_slice(), 1024).await.unwrap();
        assert_eq!(back, msg);

        let err = encode(&msg, 10).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { limit: 10, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("limit of 10 bytes"), "{err}");
        let err = read_frame::<_, Vec<String>>(&mut frame.as_slice(), 10)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { limit: 10, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn end_of_stream_between_frames_differs_from_a_torn_frame() {
        let empty: &[u8] = &[];
        assert!(matches!(
            read_frame::<_, String>(&mut &*empty, 1024).await,
            Err(FrameError::Closed)
        ));
        let torn: &[u8] = &[0, 0, 0, 9, b'"'];
        assert!(matches!(
            read_frame::<_, String>(&mut &*torn, 1024).await,
            Err(FrameError::Io(_))
        ));
        let garbage: &[u8] = &[0, 0, 0, 3, b'{', b'{', b'{'];
        assert!(matches!(
            read_frame::<_, String>(&mut &*garbage, 1024).await,
            Err(FrameError::Malformed(_))
        ));
    }
}
