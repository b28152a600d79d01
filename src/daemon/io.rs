//! [`RequestIo`] in a daemon process: the request's I/O goes over the socket to the Apache child.

use crate::protocol::BodyErrorKind;
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::protocol::{self, Frame, fdpass};
use crate::wsgi::{IoError, RequestIo, ResponseHead, Severity};

pub struct DaemonIo {
    pub stream: Arc<UnixStream>,
    pub header_only: bool,
    pub client: String,
    pub body_done: bool,
    /// Set once the connection failed: it must not be reused.
    pub broken: bool,
    /// Set once an Abort record went out (the response is over).
    pub aborted: bool,
    shared: Arc<(AtomicBool, AtomicBool)>,
    /// Encoded records not yet written: the head and small body blocks go out together.
    out: Vec<u8>,
}

/// Buffered records are written once they reach this size.
const BATCH: usize = 64 * 1024;

/// Lets the caller see `broken` / `aborted` after the adapter has consumed the DaemonIo.
pub struct Flags(Arc<(AtomicBool, AtomicBool)>);

impl Flags {
    /// (broken, aborted)
    pub fn get(&self) -> (bool, bool) {
        (self.0.0.load(Ordering::SeqCst), self.0.1.load(Ordering::SeqCst))
    }
}

impl DaemonIo {
    pub fn new(stream: Arc<UnixStream>, header_only: bool, client: String) -> Self {
        DaemonIo { stream, header_only, client, body_done: false, broken: false, aborted: false, shared: Arc::default(), out: Vec::new() }
    }

    pub fn flags(&self) -> Flags {
        Flags(self.shared.clone())
    }

    fn mark(&mut self) {
        self.shared.0.store(self.broken, Ordering::SeqCst);
        self.shared.1.store(self.aborted, Ordering::SeqCst);
    }
}

fn gone(e: std::io::Error) -> IoError {
    IoError::ClientGone(format!("connection to the Apache child lost: {e}"))
}

impl DaemonIo {
    /// Queues a record; writes the queue when it is large or `now` is set.
    fn send(&mut self, f: &Frame, now: bool) -> Result<(), IoError> {
        self.out.extend_from_slice(&protocol::encode(f));
        if now || self.out.len() >= BATCH { self.write_out() } else { Ok(()) }
    }

    fn write_out(&mut self) -> Result<(), IoError> {
        if self.out.is_empty() || self.broken {
            return if self.broken { Err(IoError::ClientGone("connection to the Apache child lost".into())) } else { Ok(()) };
        }
        let r = (&*self.stream).write_all(&self.out).map_err(|e| {
            self.broken = true;
            gone(e)
        });
        self.out.clear();
        self.mark();
        r
    }
}

impl RequestIo for DaemonIo {
    fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        if self.body_done || buf.is_empty() {
            return Ok(0);
        }
        let max = buf.len().min(protocol::MAX_FRAME / 2) as u32;
        self.send(&Frame::ReadBody { max }, true)?;
        match protocol::read_frame(&mut &*self.stream) {
            Ok(Some(Frame::Body(data))) if data.len() <= buf.len() => {
                buf[..data.len()].copy_from_slice(&data);
                Ok(data.len())
            }
            Ok(Some(Frame::BodyEnd)) => {
                self.body_done = true;
                Ok(0)
            }
            Ok(Some(Frame::BodyError { kind, message })) => {
                self.body_done = true;
                Err(match kind {
                    BodyErrorKind::ClientGone => IoError::ClientGone(message),
                    BodyErrorKind::TimedOut => IoError::TimedOut(message),
                    BodyErrorKind::TooLarge => IoError::TooLarge(message),
                    BodyErrorKind::Other => IoError::Other(message),
                })
            }
            Ok(other) => {
                self.broken = true;
                self.mark();
                Err(IoError::Other(format!("protocol error: expected request body, got {other:?}")))
            }
            Err(e) => {
                self.broken = true;
                self.mark();
                Err(gone(e))
            }
        }
    }

    fn send_head(&mut self, head: &ResponseHead) -> Result<(), IoError> {
        self.send(&Frame::Head { code: head.code, status: head.status.clone(), headers: head.headers.clone() }, false)
    }

    fn write_body(&mut self, data: &[u8], flush: bool) -> Result<(), IoError> {
        // Large blocks go in several frames so no frame exceeds the limit.
        for piece in data.chunks(256 * 1024) {
            self.send(&Frame::Data { flush, data: piece.to_vec() }, flush)?;
        }
        Ok(())
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> Result<bool, IoError> {
        self.write_out()?;
        let bytes = protocol::encode(&Frame::File { offset, len });
        let r = fdpass::send_with_fd(&self.stream, &bytes, fd);
        if let Err(e) = r {
            self.broken = true;
            self.mark();
            return Err(gone(e));
        }
        Ok(true)
    }

    fn abort(&mut self) {
        if !self.aborted {
            self.aborted = true;
            self.mark();
            let _ = self.send(&Frame::Abort("the application failed after the response head was sent".into()), true);
        }
    }

    fn flush_pending(&mut self) -> Result<(), IoError> {
        self.write_out()
    }

    /// A complete response: the end record goes out in the same write as the last records.
    fn finish(&mut self) -> Result<(), IoError> {
        self.out.extend_from_slice(&protocol::encode(&Frame::End(protocol::EndKind::Complete)));
        self.write_out()
    }

    fn may_block(&self, len: usize) -> bool {
        self.out.len() + len + 16 >= BATCH
    }

    fn header_only(&self) -> bool {
        self.header_only
    }

    fn log(&self, severity: Severity, message: &str) {
        let c = &self.client;
        match severity {
            Severity::Error => tracing::error!(target: "wsgi", "[client {c}] {message}"),
            Severity::Warning => tracing::warn!(target: "wsgi", "[client {c}] {message}"),
            Severity::Info => tracing::info!(target: "wsgi", "[client {c}] {message}"),
            Severity::Debug => tracing::debug!(target: "wsgi", "[client {c}] {message}"),
        }
    }
}
