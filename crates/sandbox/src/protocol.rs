//! What the parent and a sandbox child say to each other: one JSON document per frame, each
//! frame a 4-byte big-endian length followed by that many bytes. The parent writes a
//! [`Request`] on the child's stdin; the child answers one [`Response`] on its stdout.

use std::io::{self, Read, Write};

use baton_core::ErrorCode;
use baton_engine::NodeError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::engine::Budget;

/// Largest frame either side accepts: a request carries the script (≤ 256 KiB) and its inputs,
/// a response the script's value, which the child's memory cap already bounds.
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// One script to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub script: String,
    pub inputs: Value,
    pub budget: Budget,
    /// CPU seconds this run may use (`RLIMIT_CPU` is raised by this much before it starts).
    pub cpu_secs: u64,
}

/// A node error as it crosses the pipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
}

impl From<NodeError> for WireError {
    fn from(e: NodeError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
        }
    }
}

impl From<WireError> for NodeError {
    fn from(e: WireError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
        }
    }
}

/// The outcome of one [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub result: Result<Value, WireError>,
    /// What the script printed, for the parent's log.
    pub output: Vec<String>,
}

fn too_large(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {len} bytes exceeds {MAX_FRAME_BYTES}"),
    )
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(value)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_FRAME_BYTES)
        .ok_or_else(|| too_large(body.len()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads one frame; `Ok(None)` on a clean end of stream before its first byte.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(too_large(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(serde_json::from_slice(&body)?))
}

pub fn write_frame<T: Serialize>(w: &mut impl Write, value: &T) -> io::Result<()> {
    w.write_all(&encode(value)?)?;
    w.flush()
}

pub async fn read_frame_async<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncRead + Unpin),
) -> io::Result<T> {
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME_BYTES {
        return Err(too_large(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

pub async fn write_frame_async<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    value: &T,
) -> io::Result<()> {
    w.write_all(&encode(value)?).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_request_survives_a_round_trip_and_the_stream_ends_cleanly() {
        let req = Request {
            script: "1 + 1".into(),
            inputs: serde_json::json!({"a": [1, 2]}),
            budget: Budget {
                timeout: Duration::from_millis(1500),
                max_operations: 7,
            },
            cpu_secs: 2,
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        let mut r = buf.as_slice();
        let back: Request = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((back.script.as_str(), back.budget), ("1 + 1", req.budget));
        assert!(read_frame::<Request>(&mut r).unwrap().is_none());
    }

    #[test]
    fn an_oversized_length_is_refused_before_allocating() {
        let frame = u32::MAX.to_be_bytes();
        let err = read_frame::<Request>(&mut frame.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
