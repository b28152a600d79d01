//! The response loop: calls the application, sends what it returns, calls `close()`, and turns
//! every failure into one of a few well-logged outcomes.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::core::Core;
use super::file_wrapper::FileWrapper;
use super::io::{IoError, Severity};
use super::start_response::StartResponse;
use crate::codes;

/// Writes at least this large release the GIL while the server sends them.
const DETACH_THRESHOLD: usize = 32 * 1024;

/// How a request ended, for the server side to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response went out whole.
    Complete,
    /// Nothing was sent; the server answers 500.
    Failed,
    /// The head went out but the body could not be completed; the response was cut short.
    Cut,
    /// The application raised mod_wsgi.RequestTimeout before the head: the server answers 504.
    TimedOut,
    /// The client stopped sending the request body and the application failed on it before
    /// the head: the server answers 408.
    BodyTimedOut,
    /// The client went away.
    ClientGone,
}

/// Why sending stopped early.
enum Stop {
    /// A Python exception (from the application, its iterable, or a bad item).
    Py(PyErr),
    /// The client or the server failed.
    Io(IoError),
    /// The iterable yielded something other than bytes.
    BadItem(String),
}

impl From<PyErr> for Stop {
    fn from(e: PyErr) -> Self {
        Stop::Py(e)
    }
}

/// Sends one body block: the head first if it has not gone, Content-Length honoured.
fn send(py: Python<'_>, core: &Core, data: &[u8], flush: bool) -> Result<(), Stop> {
    let core2 = core.clone();
    let work = move || -> Result<(), IoError> {
        let mut g = core2.lock();
        let s = g.as_mut().ok_or_else(|| IoError::Other(super::core::FINISHED.into()))?;
        let t = s.stats.start();
        let r = write_locked(s, data, flush);
        if let Some(t) = t {
            s.stats.output_time += t.elapsed();
        }
        r
    };
    let blocking = flush || data.len() >= DETACH_THRESHOLD || core.with(|s| s.io.may_block(data.len())).unwrap_or(true);
    let r = if blocking { core.detach(py, work) } else { work() };
    r.map_err(Stop::Io)
}

/// Passes one body block to the server (the head first), with the state locked.
fn write_locked(s: &mut super::core::CoreState, data: &[u8], flush: bool) -> Result<(), IoError> {
    s.ensure_head()?;
    let n = s.allowed(data.len());
    if n < data.len() && !s.response.excess_reported {
        s.response.excess_reported = true;
        s.io.log(
            Severity::Warning,
            &format!(
                "{}: the application returned more than its Content-Length of {} bytes; the excess was dropped",
                codes::EXCESS_BODY,
                s.response.content_length.unwrap_or(0)
            ),
        );
    }
    s.response.written += n as u64;
    if n == 0 || s.io.header_only() {
        return Ok(());
    }
    s.stats.output_writes += 1;
    s.stats.output_bytes += n as u64;
    s.io.write_body(&data[..n], flush)
}

/// `write()` and the iterable share this: empty blocks are skipped (the head waits for the first
/// non-empty one).
pub(crate) fn write_block(py: Python<'_>, core: &Core, bytes: &Bound<'_, PyBytes>, flush: bool) -> PyResult<()> {
    let data = bytes.as_bytes();
    if data.is_empty() {
        return Ok(());
    }
    match send(py, core, data, flush) {
        Ok(()) => Ok(()),
        Err(Stop::Py(e)) => Err(e),
        Err(Stop::Io(e)) => Err(pyo3::exceptions::PyOSError::new_err(format!("failed to write response data: {e}"))),
        Err(Stop::BadItem(m)) => Err(pyo3::exceptions::PyTypeError::new_err(m)),
    }
}

fn item_bytes<'a, 'py>(item: &'a Bound<'py, PyAny>) -> Result<&'a Bound<'py, PyBytes>, Stop> {
    item.cast::<PyBytes>().map_err(|_| {
        let ty = item.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        let shown: String = item.repr().map(|r| r.to_string()).unwrap_or_default().chars().take(80).collect();
        Stop::BadItem(format!("the application's iterable yielded a {ty} ({shown}); each item must be bytes"))
    })
}

/// Tries to hand a file_wrapper's file to the server. `Ok(false)`: use plain iteration instead.
fn try_send_file(py: Python<'_>, core: &Core, fw: &FileWrapper) -> Result<bool, Stop> {
    let f = fw.filelike.bind(py);
    let (Ok(fd), Ok(pos)) = (
        f.call_method0("fileno").and_then(|v| v.extract::<i32>()),
        f.call_method0("tell").and_then(|v| v.extract::<u64>()),
    ) else {
        return Ok(false);
    };
    // Anything buffered in Python but not yet written to the file would be missed.
    if f.hasattr("flush").unwrap_or(false) {
        let _ = f.call_method0("flush");
    }
    let core2 = core.clone();
    core.detach(py, move || -> Result<bool, IoError> {
        // The descriptor belongs to the Python file object (kept open by the file_wrapper).
        let size = match crate::sys::fd::fstat_raw(fd) {
            Ok(st) if st.is_regular_file() => st.size,
            _ => return Ok(false),
        };
        let mut g = core2.lock();
        let s = g.as_mut().ok_or_else(|| IoError::Other(super::core::FINISHED.into()))?;
        if s.response.written > 0 {
            return Ok(false);
        }
        let len = s.allowed(size.saturating_sub(pos) as usize) as u64;
        let t = s.stats.start();
        s.ensure_head()?;
        s.response.written += len;
        if len == 0 || s.io.header_only() {
            return Ok(true);
        }
        s.stats.output_writes += 1;
        s.stats.output_bytes += len;
        let r = s.io.send_file(fd, pos, len);
        if let Some(t) = t {
            s.stats.output_time += t.elapsed();
        }
        r
    })
    .map_err(Stop::Io)
}

/// Sends the iterable the application returned.
fn consume(py: Python<'_>, core: &Core, result: &Bound<'_, PyAny>) -> Result<(), Stop> {
    if let Ok(fw) = result.cast::<FileWrapper>() {
        let started = core.with(|s| s.response.head.is_some()).unwrap_or(false);
        if started && try_send_file(py, core, fw.get())? {
            return Ok(());
        }
    }
    // A list or tuple is complete already: no need to flush between its items.
    if let Ok(list) = result.cast::<PyList>() {
        for item in list.iter() {
            let b = item_bytes(&item)?;
            if !b.as_bytes().is_empty() {
                send(py, core, b.as_bytes(), false)?;
            }
        }
        return Ok(());
    }
    if let Ok(tuple) = result.cast::<PyTuple>() {
        for item in tuple.iter() {
            let b = item_bytes(&item)?;
            if !b.as_bytes().is_empty() {
                send(py, core, b.as_bytes(), false)?;
            }
        }
        return Ok(());
    }
    for item in result.try_iter()? {
        let item = item?;
        let b = item_bytes(&item)?;
        if !b.as_bytes().is_empty() {
            send(py, core, b.as_bytes(), true)?;
        }
    }
    Ok(())
}

/// Logs a Python exception as one line per traceback line, each with `code`.
pub fn log_exception(py: Python<'_>, core: &Core, code: &str, headline: &str, err: &PyErr) {
    core.log(Severity::Error, &format!("{code}: {headline}"));
    for line in format_exception(py, err) {
        core.log(Severity::Error, &format!("{code}: {line}"));
    }
}

/// The traceback of `err` as lines, like `traceback.format_exception`.
pub fn format_exception(py: Python<'_>, err: &PyErr) -> Vec<String> {
    let formatted = py.import("traceback").and_then(|tb| {
        tb.call_method1("format_exception", (err.get_type(py), err.value(py), err.traceback(py)))
    });
    match formatted.and_then(|l| l.extract::<Vec<String>>()) {
        Ok(chunks) => chunks.concat().lines().map(str::to_owned).collect(),
        Err(_) => vec![err.to_string()],
    }
}

/// Runs one WSGI call: `application(environ, start_response)`, the body, `close()`.
pub fn run(py: Python<'_>, app: &Bound<'_, PyAny>, environ: &Bound<'_, PyDict>, core: &Core, script: &str) -> Outcome {
    let sr = match StartResponse::new(py, core.clone()).and_then(|sr| Py::new(py, sr)) {
        Ok(sr) => sr,
        Err(e) => {
            log_exception(py, core, codes::APP_EXCEPTION, "cannot create start_response", &e);
            return Outcome::Failed;
        }
    };
    let result = match app.call1((environ, sr)) {
        Ok(r) => r,
        Err(e) => return failed(py, core, script, Stop::Py(e)),
    };
    let sent = consume(py, core, &result);
    let mut outcome = match sent {
        Ok(()) => {
            let c = core.clone();
            core.detach(py, move || finish_head(&c))
        }
        Err(stop) => failed(py, core, script, stop),
    };
    // close() exactly once, whatever happened above. A plain list or tuple has none (looking it
    // up would raise and clear an AttributeError on every request).
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return outcome;
    }
    match result.getattr_opt(pyo3::intern!(py, "close")) {
        Ok(Some(close)) => {
            if let Err(e) = close.call0() {
                let headline = format!("{}: close() of the iterable returned by '{script}' raised", codes::CLOSE_FAILED);
                log_exception(py, core, codes::CLOSE_FAILED, &headline, &e);
                super::events::request_exception(py, core, &e);
                if outcome == Outcome::Complete && !core.with(|s| s.response.head_sent).unwrap_or(false) {
                    outcome = Outcome::Failed;
                }
            }
        }
        Ok(None) => {}
        Err(e) => log_exception(py, core, codes::CLOSE_FAILED, "cannot look up close()", &e),
    }
    outcome
}

/// After the body: make sure the head went out and that the promised length was met.
fn finish_head(core: &Core) -> Outcome {
    let r = core.with(|s| {
        if s.response.head.is_none() {
            s.io.log(
                Severity::Error,
                &format!("{}: the application returned without calling start_response()", codes::NO_START_RESPONSE),
            );
            return Outcome::Failed;
        }
        let t = s.stats.start();
        let sent = s.ensure_head();
        if let Some(t) = t {
            s.stats.output_time += t.elapsed();
        }
        if let Err(e) = sent {
            return io_outcome(s, e);
        }
        if let Some(cl) = s.response.content_length {
            if s.response.written < cl && !s.io.header_only() {
                s.io.log(
                    Severity::Warning,
                    &format!(
                        "{}: the application promised Content-Length {cl} but returned only {} bytes; the connection was closed so the client sees a truncated response",
                        codes::SHORT_BODY, s.response.written
                    ),
                );
                s.io.abort();
                return Outcome::Cut;
            }
        }
        Outcome::Complete
    });
    r.unwrap_or(Outcome::Failed)
}

fn io_outcome(s: &mut super::core::CoreState, e: IoError) -> Outcome {
    match e {
        IoError::ClientGone(m) => {
            s.io.log(Severity::Info, &format!("{}: client went away before the response was complete ({m})", codes::CLIENT_GONE));
            Outcome::ClientGone
        }
        other => {
            s.io.log(Severity::Error, &format!("{}: failed to send the response: {other}", codes::APP_EXCEPTION_AFTER_HEAD));
            s.io.abort();
            Outcome::Cut
        }
    }
}

/// Whether `e` is this interpreter's `mod_wsgi.RequestTimeout`.
fn is_request_timeout(py: Python<'_>, e: &PyErr) -> bool {
    let Ok(modules) = py.import("sys").and_then(|s| s.getattr("modules")) else { return false };
    let class = modules.get_item("mod_wsgi").and_then(|m| m.getattr("RequestTimeout"));
    class.is_ok_and(|c| e.value(py).is_instance(&c).unwrap_or(false))
}

/// Reports a failure; decides between a 500 (nothing sent yet) and a cut response.
fn failed(py: Python<'_>, core: &Core, script: &str, stop: Stop) -> Outcome {
    let head_sent = core.with(|s| s.response.head_sent).unwrap_or(true);
    match stop {
        Stop::Io(e) => {
            let c = core.clone();
            py.detach(move || c.with(|s| io_outcome(s, e)).unwrap_or(Outcome::Failed))
        }
        Stop::BadItem(what) => {
            let after = if head_sent { "; the response was cut short" } else { "" };
            core.log(Severity::Error, &format!("{}: bad response from WSGI script '{script}': {what}{after}", codes::BAD_BODY_ITEM));
            if head_sent {
                { let c = core.clone(); py.detach(move || { let _ = c.with(|s| s.io.abort()); }); }
                Outcome::Cut
            } else {
                Outcome::Failed
            }
        }
        Stop::Py(_) if !head_sent && core.with(|s| s.input_timed_out).unwrap_or(false) => {
            // The application failed because the client went silent mid-body: say that, once.
            core.log(Severity::Error, &format!("{}: the client stopped sending the request body to '{script}' (the server's Timeout); returning 408", codes::BODY_TIMEOUT));
            Outcome::BodyTimedOut
        }
        Stop::Py(e) if is_request_timeout(py, &e) => {
            // mod_wsgi.RequestTimeout: the application gave up on the request; no traceback.
            core.log(Severity::Info, "Request interrupted by RequestTimeout; thread recovered.");
            if head_sent {
                { let c = core.clone(); py.detach(move || { let _ = c.with(|s| s.io.abort()); }); }
                Outcome::Cut
            } else {
                Outcome::TimedOut
            }
        }
        Stop::Py(e) => {
            // The application let start_response's refusal propagate: one clear line.
            let shown = e.value(py).to_string();
            let rejected = core.with(|s| s.response.rejected.take()).ok().flatten().filter(|(m, _)| *m == shown);
            let bad = rejected.is_some();
            let code = if bad {
                codes::BAD_RESPONSE_HEAD
            } else if head_sent {
                codes::APP_EXCEPTION_AFTER_HEAD
            } else {
                codes::APP_EXCEPTION
            };
            if let Some((_, what)) = rejected {
                core.log(Severity::Error, &format!("{code}: bad response from WSGI script '{script}': {what}"));
            } else {
                // mod_wsgi 6's wording: the exception class first; SystemExit said apart (it
                // never stops a server process).
                let class = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
                let what = if e.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
                    format!("{class} exception raised by WSGI script '{script}' (it does not stop the process)")
                } else {
                    format!("{class} exception raised processing WSGI script '{script}'")
                };
                let headline = if head_sent { format!("{what} after the response head was sent; the response was cut short.") } else { format!("{what}.") };
                log_exception(py, core, code, &headline, &e);
            }
            super::events::request_exception(py, core, &e);
            if head_sent {
                { let c = core.clone(); py.detach(move || { let _ = c.with(|s| s.io.abort()); }); }
                Outcome::Cut
            } else {
                Outcome::Failed
            }
        }
    }
}
