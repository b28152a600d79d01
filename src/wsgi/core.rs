//! State shared by the Python objects of one request (wsgi.input, wsgi.errors, start_response,
//! write) and the response loop.
//!
//! The state sits behind `Arc<Mutex<Option<..>>>`: when the request ends it is taken out, so an
//! application that keeps `environ['wsgi.input']` past its request gets a clean Python error
//! instead of touching a finished request. No lock is ever held while Python code runs.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::Python;

use super::io::{IoError, RequestIo, ResponseHead, Severity};

/// Progress of the response.
#[derive(Debug, Default)]
pub struct ResponseState {
    /// What start_response was last given (validated).
    pub head: Option<ResponseHead>,
    /// Whether the head went to the server (after that exc_info re-raises).
    pub head_sent: bool,
    /// Content-Length the application promised.
    pub content_length: Option<u64>,
    /// Body bytes passed to the server so far.
    pub written: u64,
    /// Excess output already reported once.
    pub excess_reported: bool,
    /// The last arguments `start_response` refused: (the exception's message, what to log if
    /// the application lets that exception propagate).
    pub rejected: Option<(String, String)>,
}

/// What one request read and wrote, for the `request_finished` event and the request metrics.
/// Counts are always kept (the lock is held anyway); times only for a timed request (events or
/// metrics on when it started), so that a plain request reads no clock for them.
#[derive(Debug, Default, Clone, Copy)]
pub struct IoStats {
    /// Whether the times below are measured.
    pub timed: bool,
    /// Reads from the server of request body data, and the bytes they returned.
    pub input_reads: u64,
    pub input_bytes: u64,
    /// Time spent in those reads.
    pub input_time: Duration,
    /// Body writes (and file sends) handed to the server, and their bytes.
    pub output_writes: u64,
    pub output_bytes: u64,
    /// Time spent in those writes, the head's included.
    pub output_time: Duration,
    /// Waits to get the GIL back after the adapter released it for I/O, and their total.
    pub gil_waits: u64,
    pub gil_wait: Duration,
}

impl IoStats {
    /// Starts timing an operation (no clock read for an untimed request).
    pub fn start(&self) -> Option<Instant> {
        self.timed.then(Instant::now)
    }
}

/// Everything one request needs behind the lock.
pub struct CoreState {
    pub io: Box<dyn RequestIo>,
    pub response: ResponseState,
    /// Body bytes read from the server but not yet handed to the application.
    pub input_buf: Vec<u8>,
    pub input_pos: usize,
    pub input_eof: bool,
    /// Set once a read failed: later reads fail the same way without touching the server.
    pub input_error: Option<String>,
    /// The read that failed found the client silent for the server's Timeout.
    pub input_timed_out: bool,
    pub stats: IoStats,
}

/// A handle on one request's state.
#[derive(Clone)]
pub struct Core {
    state: Arc<Mutex<Option<CoreState>>>,
    /// The request is timed (see [`IoStats`]).
    timed: bool,
}

/// The error returned once a request has finished.
pub const FINISHED: &str = "the WSGI request this object belongs to has already finished";

impl Core {
    /// A request's state; `timed`: measure the times of [`IoStats`] too.
    pub fn new(io: Box<dyn RequestIo>, timed: bool) -> Self {
        let state = CoreState {
            io,
            response: ResponseState::default(),
            input_buf: Vec::new(),
            input_pos: 0,
            input_eof: false,
            input_error: None,
            input_timed_out: false,
            stats: IoStats { timed, ..IoStats::default() },
        };
        Core { state: Arc::new(Mutex::new(Some(state))), timed }
    }

    /// Locks the state. A poisoned lock (a panic while it was held) is still usable: the state
    /// is plain data and the panic was already turned into an error.
    pub fn lock(&self) -> MutexGuard<'_, Option<CoreState>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the GIL released (`py.detach`); for a timed request, also counts the wait
    /// to get the GIL back afterwards (`gil_wait_time` of the events and metrics).
    pub fn detach<T: Send>(&self, py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
        if !self.timed {
            return py.detach(f);
        }
        let (r, released_until) = py.detach(move || {
            let r = f();
            (r, Instant::now())
        });
        self.gil_regained(released_until);
        r
    }

    /// Counts a wait for the GIL that began at `since` and ended now (timed requests only).
    pub fn gil_regained(&self, since: Instant) {
        if self.timed {
            let waited = since.elapsed();
            let _ = self.with(|s| {
                s.stats.gil_waits += 1;
                s.stats.gil_wait += waited;
            });
        }
    }

    /// Whether the request is timed (see [`IoStats`]).
    pub fn timed(&self) -> bool {
        self.timed
    }

    /// Runs `f` on the live state, or fails with [`FINISHED`].
    pub fn with<T>(&self, f: impl FnOnce(&mut CoreState) -> T) -> Result<T, &'static str> {
        let mut g = self.lock();
        match g.as_mut() {
            Some(s) => Ok(f(s)),
            None => Err(FINISHED),
        }
    }

    /// Logs through the request, or drops the line if the request is over.
    pub fn log(&self, severity: Severity, message: &str) {
        let g = self.lock();
        if let Some(s) = g.as_ref() {
            s.io.log(severity, message);
        }
    }

    /// Ends the request: the server-side I/O object is returned and every Python object that
    /// still refers to this request sees it as finished.
    pub fn finish(&self) -> Option<CoreState> {
        self.lock().take()
    }
}

impl CoreState {
    /// Sends the head if it has not gone yet. Fails if start_response was never called.
    pub fn ensure_head(&mut self) -> Result<(), IoError> {
        if self.response.head_sent {
            return Ok(());
        }
        let head = self
            .response
            .head
            .as_ref()
            .ok_or_else(|| IoError::Other("start_response() was not called".into()))?;
        self.io.send_head(head)?;
        self.response.head_sent = true;
        Ok(())
    }

    /// How much of `len` more bytes may still go out under the promised Content-Length.
    pub fn allowed(&self, len: usize) -> usize {
        match self.response.content_length {
            Some(cl) => (cl.saturating_sub(self.response.written)).min(len as u64) as usize,
            None => len,
        }
    }
}
