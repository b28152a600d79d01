//! `wsgi.input`: the request body as a Python file-like object.
//!
//! Reads stream from the server in bounded pieces with the GIL released; nothing is held beyond
//! what the application asks for (plus one read-ahead buffer for readline).

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::core::{Core, CoreState};
use super::io::IoError;

/// How much is asked of the server at a time when the application gives no size.
const CHUNK: usize = 64 * 1024;

#[pyclass(module = "mod_wsgi", name = "Input", frozen)]
pub struct Input {
    pub(crate) core: Core,
}

fn io_err(e: impl std::fmt::Display) -> PyErr {
    PyOSError::new_err(format!("error reading the request body: {e}"))
}

/// Pulls up to `want` more bytes into the read-ahead buffer. Returns how many arrived (0 = end).
fn fill(state: &mut CoreState, want: usize) -> Result<usize, String> {
    if let Some(e) = &state.input_error {
        return Err(e.clone());
    }
    if state.input_eof {
        return Ok(0);
    }
    if state.input_pos > 0 && state.input_pos == state.input_buf.len() {
        state.input_buf.clear();
        state.input_pos = 0;
    }
    let start = state.input_buf.len();
    state.input_buf.resize(start + want.max(1), 0);
    let t = state.stats.start();
    let r = state.io.read_body(&mut state.input_buf[start..]);
    count_read(state, &r, t);
    match r {
        Ok(n) => {
            state.input_buf.truncate(start + n);
            if n == 0 {
                state.input_eof = true;
            }
            Ok(n)
        }
        Err(e) => {
            state.input_buf.truncate(start);
            let msg = input_failure(state, e);
            Err(msg)
        }
    }
}

/// Counts one read from the server (and its time, for a timed request).
fn count_read(state: &mut CoreState, r: &Result<usize, IoError>, started: Option<std::time::Instant>) {
    state.stats.input_reads += 1;
    if let Ok(n) = r {
        state.stats.input_bytes += *n as u64;
    }
    if let Some(t) = started {
        state.stats.input_time += t.elapsed();
    }
}

/// Records why reading the request body failed (later reads fail the same way) and says it in
/// words the application's traceback will show.
fn input_failure(state: &mut CoreState, e: IoError) -> String {
    let msg = match e {
        IoError::ClientGone(m) => format!("client closed the connection while sending the request body ({m})"),
        IoError::TimedOut(m) => {
            state.input_timed_out = true;
            format!("client stopped sending the request body: {m}")
        }
        IoError::TooLarge(m) => format!("request body too large: {m}"),
        IoError::Other(m) => format!("cannot read the request body: {m}"),
    };
    state.input_error = Some(msg.clone());
    msg
}

/// Takes up to `n` buffered bytes.
fn take(state: &mut CoreState, n: usize) -> Vec<u8> {
    let avail = state.input_buf.len() - state.input_pos;
    let n = n.min(avail);
    let out = state.input_buf[state.input_pos..state.input_pos + n].to_vec();
    state.input_pos += n;
    out
}

fn opt_size(size: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    match size {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => {
            let n: i64 = v.extract()?;
            Ok(if n < 0 { None } else { Some(n as usize) })
        }
    }
}

/// Fills `dst` from the read-ahead buffer and then straight from the server, until it is full or
/// the body ends. Returns how many bytes were written.
fn fill_exact(state: &mut CoreState, dst: &mut [u8]) -> Result<usize, String> {
    let avail = state.input_buf.len() - state.input_pos;
    let mut off = avail.min(dst.len());
    dst[..off].copy_from_slice(&state.input_buf[state.input_pos..state.input_pos + off]);
    state.input_pos += off;
    while off < dst.len() {
        if let Some(e) = &state.input_error {
            return Err(e.clone());
        }
        if state.input_eof {
            break;
        }
        let t = state.stats.start();
        let r = state.io.read_body(&mut dst[off..]);
        count_read(state, &r, t);
        match r {
            Ok(0) => state.input_eof = true,
            Ok(n) => off += n,
            Err(e) => {
                return Err(input_failure(state, e));
            }
        }
    }
    Ok(off)
}

impl Input {
    /// `read(n)`: allocates the result once and fills it in place with the GIL released (one
    /// copy of the body data).
    fn read_sized<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let core = self.core.clone();
        let timed = core.timed();
        // When the read ended (GIL released): the wait to get the GIL back is counted from it.
        let released_until = std::sync::OnceLock::new();
        let until = &released_until;
        let r = crate::python::bytes::filled(py, n, move |dst| {
            let got = core.with(|s| fill_exact(s, dst)).map_err(String::from).and_then(|r| r);
            if timed {
                let _ = until.set(std::time::Instant::now());
            }
            got.map_err(io_err)
        });
        if let Some(t) = released_until.get() {
            self.core.gil_regained(*t);
        }
        r
    }

    /// Reads exactly `n` bytes or up to the end of the body; `None` reads everything.
    fn read_impl(&self, py: Python<'_>, n: Option<usize>) -> PyResult<Vec<u8>> {
        let core = self.core.clone();
        self.core.detach(py, move || {
            core.with(|s| -> Result<Vec<u8>, String> {
                let mut out = Vec::new();
                loop {
                    let avail = s.input_buf.len() - s.input_pos;
                    let need = match n {
                        Some(n) => n - out.len(),
                        None => usize::MAX,
                    };
                    if avail > 0 {
                        let mut part = take(s, need);
                        if out.is_empty() {
                            out = std::mem::take(&mut part);
                        } else {
                            out.extend_from_slice(&part);
                        }
                        if n.is_some_and(|n| out.len() >= n) {
                            return Ok(out);
                        }
                    }
                    let want = match n {
                        Some(n) => (n - out.len()).min(4 * CHUNK),
                        None => CHUNK,
                    };
                    if want == 0 {
                        return Ok(out);
                    }
                    if fill(s, want)? == 0 {
                        return Ok(out);
                    }
                }
            })
            .map_err(String::from)?
        })
        .map_err(io_err)
    }

    fn readline_impl(&self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let core = self.core.clone();
        self.core.detach(py, move || {
            core.with(|s| -> Result<Vec<u8>, String> {
                let mut scanned = 0;
                loop {
                    let avail = &s.input_buf[s.input_pos..];
                    let cap = limit.unwrap_or(usize::MAX);
                    if let Some(i) = avail[scanned..].iter().position(|b| *b == b'\n') {
                        let end = (scanned + i + 1).min(cap);
                        return Ok(take(s, end));
                    }
                    scanned = avail.len();
                    if scanned >= cap {
                        return Ok(take(s, cap));
                    }
                    if fill(s, CHUNK)? == 0 {
                        return Ok(take(s, usize::MAX));
                    }
                }
            })
            .map_err(String::from)?
        })
        .map_err(io_err)
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyBytes>> {
        match opt_size(size)? {
            Some(n) => self.read_sized(py, n),
            None => Ok(PyBytes::new(py, &self.read_impl(py, None)?)),
        }
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyBytes>> {
        let n = opt_size(size)?;
        if n == Some(0) {
            return Ok(PyBytes::new(py, b""));
        }
        let data = self.readline_impl(py, n)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyList>> {
        let hint = opt_size(hint)?.filter(|h| *h > 0);
        let out = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.readline_impl(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            out.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(out)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.readline_impl(py, None)?;
        Ok(if line.is_empty() { None } else { Some(PyBytes::new(py, &line)) })
    }

    fn close(&self) {}
}
