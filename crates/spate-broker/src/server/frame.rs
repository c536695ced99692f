//! Kafka's framing: every request and response is a 4-byte big-endian length followed by that
//! many bytes. Reading is incremental into one buffer per connection, so pipelined requests that
//! arrive in one TCP segment are split without extra copies, and a frame's bytes are only
//! reserved as they arrive (a client announcing 100 MiB and sending nothing costs nothing).

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{BrokerError, Result};

const LENGTH_PREFIX: usize = 4;
/// Read in chunks of at most this much, so memory follows the bytes actually received.
const READ_CHUNK: usize = 64 * 1024;

/// Reads length-prefixed frames from a stream.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_frame: usize,
}

impl<R> std::fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("max_frame", &self.max_frame)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames from `inner`, refusing one longer than `max_frame` (`socket.request.max.bytes`).
    pub fn new(inner: R, max_frame: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            max_frame,
        }
    }

    /// Takes a whole frame out of the buffer if one is there.
    fn take_frame(&mut self) -> Result<Option<Bytes>> {
        if self.buf.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len < 0 {
            return Err(BrokerError::MalformedFrame(format!(
                "negative frame length {len}"
            )));
        }
        let len = len as usize;
        if len > self.max_frame {
            return Err(BrokerError::FrameTooLarge {
                size: len,
                max: self.max_frame,
            });
        }
        if self.buf.len() < LENGTH_PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(LENGTH_PREFIX);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// True if a whole frame is already buffered (the next `read_frame` will not wait), which
    /// tells the writer it may hold back its flush.
    pub fn has_buffered_frame(&self) -> bool {
        if self.buf.len() < LENGTH_PREFIX {
            return false;
        }
        let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        len >= 0 && self.buf.len() >= LENGTH_PREFIX + len as usize
    }

    /// The next frame; `Ok(None)` on a clean end of stream (between frames).
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(Some(frame));
            }
            let need = if self.buf.len() >= LENGTH_PREFIX {
                let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                LENGTH_PREFIX + len.max(0) as usize
            } else {
                LENGTH_PREFIX
            };
            let missing = need.saturating_sub(self.buf.len());
            self.buf.reserve(missing.clamp(LENGTH_PREFIX, READ_CHUNK));
            let n = self
                .inner
                .read_buf(&mut self.buf)
                .await
                .map_err(BrokerError::ConnectionIo)?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(BrokerError::MalformedFrame(format!(
                    "connection closed in the middle of a frame ({} of {need} bytes received)",
                    self.buf.len()
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn splits_pipelined_frames() {
        let mut bytes = frame(b"hello");
        bytes.extend(frame(b""));
        bytes.extend(frame(b"world!"));
        let mut r = FrameReader::new(&bytes[..], 1024);
        assert_eq!(&r.read_frame().await.unwrap().unwrap()[..], b"hello");
        assert!(r.has_buffered_frame());
        assert_eq!(r.read_frame().await.unwrap().unwrap().len(), 0);
        assert_eq!(&r.read_frame().await.unwrap().unwrap()[..], b"world!");
        assert!(r.read_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rejects_bad_frames() {
        let big = 2048i32.to_be_bytes();
        let mut r = FrameReader::new(&big[..], 1024);
        assert!(matches!(
            r.read_frame().await,
            Err(BrokerError::FrameTooLarge { size: 2048, .. })
        ));
        let neg = (-5i32).to_be_bytes();
        let mut r = FrameReader::new(&neg[..], 1024);
        assert!(matches!(
            r.read_frame().await,
            Err(BrokerError::MalformedFrame(_))
        ));
        let cut = &frame(b"abcdef")[..7];
        let mut r = FrameReader::new(cut, 1024);
        let err = r.read_frame().await.unwrap_err().to_string();
        assert!(err.contains("7 of 10 bytes"), "{err}");
    }
}
