//! The small I/O surface the WSGI adapter needs from a server.
//!
//! Embedded mode implements it over Apache's `request_rec`; daemon mode implements it over the
//! socket to the Apache child. The Python-side adapter (`wsgi::adapter`) only ever sees this trait.

use std::os::fd::RawFd;

/// Why an I/O operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The client went away (connection reset, aborted upload, closed socket).
    #[error("client connection closed: {0}")]
    ClientGone(String),
    /// The client sent no request body data for the server's Timeout.
    #[error("client sent no data in time: {0}")]
    TimedOut(String),
    /// The request body exceeded a configured limit (LimitRequestBody).
    #[error("request body too large: {0}")]
    TooLarge(String),
    /// Anything else the server reports.
    #[error("{0}")]
    Other(String),
}

/// The status line and headers an application gave to `start_response`, already validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHead {
    /// Numeric status code parsed from the status line.
    pub code: u16,
    /// The full status line as given, e.g. `"200 OK"`.
    pub status: String,
    /// Header name/value pairs in the order given; repeated names are kept.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The value of `Content-Length`, if the application gave a valid one.
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
    }
}

/// Log severities the adapter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    Info,
    Debug,
}

/// What a server must provide to run one WSGI request.
///
/// Every method may block; the adapter calls the blocking ones with the GIL released, so an
/// implementation must not touch Python.
pub trait RequestIo: Send {
    /// Reads up to `buf.len()` bytes of the request body; `Ok(0)` at the end of the body.
    fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, IoError>;
    /// Sets the response status and headers. Called once, just before the first body bytes
    /// (or at the end of a response without a body).
    fn send_head(&mut self, head: &ResponseHead) -> Result<(), IoError>;
    /// Writes body bytes. `flush` asks for them to reach the client now (streaming).
    fn write_body(&mut self, data: &[u8], flush: bool) -> Result<(), IoError>;
    /// Sends `len` bytes of an open file from `offset` without copying through Python.
    /// Returns `Ok(false)` when the server cannot do that, so the caller falls back to reads.
    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> Result<bool, IoError>;
    /// Whether writing `len` more bytes (without a flush) may block on the network, so that the
    /// caller releases the GIL first.
    fn may_block(&self, len: usize) -> bool {
        let _ = len;
        true
    }
    /// Ends the response so that the client can tell it is incomplete (a chunked body is left
    /// unterminated, the connection is closed). Used when the application fails mid-body.
    fn abort(&mut self);
    /// Whether a response body would be discarded (HEAD request).
    fn header_only(&self) -> bool;
    /// Pushes out anything the implementation buffered (daemon mode batches its records).
    fn flush_pending(&mut self) -> Result<(), IoError> {
        Ok(())
    }
    /// The response is complete: send what is buffered and the end of the stream.
    fn finish(&mut self) -> Result<(), IoError> {
        self.flush_pending()
    }
    /// Writes one line to the server's error log, attributed to this request.
    fn log(&self, severity: Severity, message: &str);
}
