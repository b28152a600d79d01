//! The daemon-mode wire protocol between an Apache child and a daemon process (pure Rust).
//!
//! Every message is a frame: one type byte, a 4-byte big-endian payload length, the payload.
//! A connection starts with [`Frame::Hello`] (magic, version, the group's secret) from the
//! Apache child and [`Frame::HelloOk`] from the daemon; then any number of requests follow, one
//! at a time. A request is [`Frame::Request`]; the daemon pulls the body with
//! [`Frame::ReadBody`] (answered by [`Frame::Body`] / [`Frame::BodyEnd`] / [`Frame::BodyError`]),
//! which gives backpressure for free, and answers with [`Frame::Head`], [`Frame::Data`] and
//! [`Frame::File`] (a descriptor passed alongside), ending with exactly one of [`Frame::End`],
//! [`Frame::Abort`] or [`Frame::Retry`]. A connection that closes before the end record is a
//! crash, never mistaken for a complete response.

mod codec;
pub mod fdpass;

pub use codec::{DecodeError, decode, encode, encode_request, read_frame, write_frame};

/// `MWRS` + version: bumped whenever the frame layout changes.
pub const MAGIC: [u8; 4] = *b"MWRS";
pub const VERSION: u16 = 3;
/// Frames larger than this are refused (a bad or hostile peer).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Length of the per-group secret.
pub const SECRET_LEN: usize = 32;

/// Everything the daemon needs to run one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub script: String,
    pub callable: String,
    pub application_group: String,
    pub script_reloading: bool,
    /// The script's mtime as the Apache child saw it (microseconds).
    pub mtime: i64,
    pub header_only: bool,
    pub url_scheme: String,
    pub request_id: String,
    /// When the Apache child sent the request (microseconds since the epoch), for the
    /// `queue_start` of mod_wsgi's events and metrics.
    pub queue_start: i64,
    /// The client's address, for log lines.
    pub client: String,
    /// CGI variables: name and raw value.
    pub cgi: Cgi,
}

/// CGI variables (name, raw value) kept in one buffer: a decoded request makes two
/// allocations for them, not two per variable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cgi {
    data: Vec<u8>,
    /// (start of the name, start of the value = end of the name, end of the value) in `data`.
    entries: Vec<(u32, u32, u32)>,
}

impl Cgi {
    /// Room for `n` variables of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        Cgi { data: Vec::with_capacity(bytes), entries: Vec::with_capacity(n) }
    }

    pub fn push(&mut self, name: &str, value: &[u8]) {
        let a = self.data.len() as u32;
        self.data.extend_from_slice(name.as_bytes());
        let b = self.data.len() as u32;
        self.data.extend_from_slice(value);
        self.entries.push((a, b, self.data.len() as u32));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The variables in order. Names were checked to be UTF-8 when they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|&(a, b, c)| {
            let (a, b, c) = (a as usize, b as usize, c as usize);
            (std::str::from_utf8(&self.data[a..b]).unwrap_or(""), &self.data[b..c])
        })
    }
}

impl<'a> FromIterator<(&'a str, &'a [u8])> for Cgi {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a [u8])>>(iter: I) -> Self {
        let mut c = Cgi::default();
        for (k, v) in iter {
            c.push(k, v);
        }
        c
    }
}

/// A request to encode without copying the environ first (the Apache child's side).
#[derive(Debug, Clone, Copy)]
pub struct RequestRef<'a> {
    pub script: &'a str,
    pub callable: &'a str,
    pub application_group: &'a str,
    pub script_reloading: bool,
    pub mtime: i64,
    pub header_only: bool,
    pub url_scheme: &'a str,
    pub request_id: &'a str,
    pub queue_start: i64,
    pub client: &'a str,
    pub cgi: &'a [(&'a str, &'a [u8])],
}

/// How a request ended in the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    Complete = 0,
    /// Nothing was sent: the Apache child answers 500.
    Failed = 1,
    ClientGone = 2,
    /// The application raised mod_wsgi.RequestTimeout before the head: the Apache child
    /// answers 504.
    TimedOut = 3,
    /// The client stopped sending the request body (the server's Timeout) before the head:
    /// the Apache child answers 408.
    BodyTimedOut = 4,
}

/// Why the Apache child could not read the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyErrorKind {
    /// The client closed the connection or reset it.
    ClientGone = 0,
    /// The client sent nothing for the server's `Timeout`.
    TimedOut = 1,
    /// The body is larger than `LimitRequestBody`.
    TooLarge = 2,
    /// Anything else (a bad chunk, ...).
    Other = 3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello { version: u16, secret: Vec<u8> },
    /// The greeting was accepted by daemon process `pid` (the Apache side cannot learn it from
    /// the socket: SO_PEERCRED names the process that listened, the Apache parent).
    HelloOk { pid: u32 },
    Request(Box<Request>),
    ReadBody { max: u32 },
    Body(Vec<u8>),
    BodyEnd,
    /// Reading the request body failed in the Apache child: why, and the server's message.
    BodyError { kind: BodyErrorKind, message: String },
    Head { code: u16, status: String, headers: Vec<(String, String)> },
    Data { flush: bool, data: Vec<u8> },
    /// A file to send from `offset`, `len` bytes; the descriptor travels with this frame.
    File { offset: u64, len: u64 },
    End(EndKind),
    /// The response was cut short after the head (the client must be able to tell).
    Abort(String),
    /// The daemon is restarting and did not run the request: send it again.
    Retry(String),
    /// The daemon refused the connection (bad secret, wrong version, unknown peer).
    Refused(String),
    /// The daemon took the request and is about to run it: from here on a lost connection
    /// means a failed request, never one that may be sent again.
    Started,
}
