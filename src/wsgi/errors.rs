//! `wsgi.errors`, `sys.stdout` and `sys.stderr`: line-buffered streams into the error log.
//!
//! As in mod_wsgi, each is an `io.TextIOWrapper` (UTF-8, line buffered, write-through) over a
//! binary stream defined here (`mod_wsgi.Log`), so `.buffer` takes bytes-like objects too.
//! A request's `wsgi.errors` logs each complete line against the request (so Apache adds the
//! client's address); the partial last line is flushed when the request ends. `sys.stdout` and
//! `sys.stderr` forward to the `wsgi.errors` of the request running on the calling thread, or to
//! the server log outside a request.

use std::cell::RefCell;
use std::sync::Mutex;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::core::Core;
use super::io::Severity;

#[pyclass(module = "mod_wsgi", name = "Log", frozen)]
pub struct Errors {
    /// The request this stream logs against now (`None` between requests: the server log).
    core: Mutex<Option<Core>>,
    pending: Mutex<String>,
}

thread_local! {
    /// The wsgi.errors of the request this thread is running, for sys.stdout/sys.stderr.
    static CURRENT: RefCell<Option<Py<Errors>>> = const { RefCell::new(None) };
}

/// Makes `errors` the target of sys.stdout/sys.stderr on this thread until [`clear_current`].
pub fn set_current(errors: Py<Errors>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(errors));
}

/// Forgets the current request's stream on this thread, returning it.
pub fn clear_current() -> Option<Py<Errors>> {
    CURRENT.with(|c| c.borrow_mut().take())
}

/// The text of a write: a str, or any bytes-like object (bytes, bytearray, memoryview, ...)
/// decoded as UTF-8 (undecodable bytes replaced), with its length as `write()` reports it.
fn text_of(s: &Bound<'_, PyAny>) -> PyResult<(String, usize)> {
    if let Ok(s) = s.cast::<PyString>() {
        let text = s.to_string_lossy().into_owned();
        let n = text.chars().count();
        return Ok((text, n));
    }
    match pyo3::buffer::PyBuffer::<u8>::get(s) {
        Ok(buf) => {
            let bytes = buf.to_vec(s.py())?;
            Ok((String::from_utf8_lossy(&bytes).into_owned(), bytes.len()))
        }
        Err(_) => Err(PyTypeError::new_err(format!(
            "write() argument must be str or a bytes-like object, not {}",
            s.get_type().name()?
        ))),
    }
}

/// A cached `wsgi.errors` of this thread: (interpreter id, log stream, its text wrapper).
type Stream = (usize, Py<Errors>, Py<PyAny>);

thread_local! {
    /// This thread's `wsgi.errors` per interpreter, reused request after request (creating an
    /// `io.TextIOWrapper` per request would cost more than the rest of a small request's
    /// environ). Each entry is only ever used with its own interpreter's thread state current.
    /// Never dropped: at thread exit pyo3 would defer the release to whichever interpreter
    /// attaches next, the wrong one for most of these objects.
    static STREAMS: std::mem::ManuallyDrop<RefCell<Vec<Stream>>> = const { std::mem::ManuallyDrop::new(RefCell::new(Vec::new())) };
}

/// `wsgi.errors` for a request of `core` on this thread: the binary log stream (pointed at the
/// request until [`end_request_stream`]) and its text wrapper. A stream an application keeps
/// after its request logs against the thread's current request, or the server log between
/// requests; one it closed is replaced.
pub fn request_stream<'py>(py: Python<'py>, core: &Core) -> PyResult<(Py<Errors>, Bound<'py, PyAny>)> {
    let id = crate::python::pool::current_interpreter_id(py);
    let cached = STREAMS.with(|c| c.borrow().iter().find(|(i, _, _)| *i == id).map(|(_, e, w)| (e.clone_ref(py), w.clone_ref(py))));
    if let Some((errors, wrapper)) = cached {
        let wrapper = wrapper.into_bound(py);
        // A wrapper the application detached (reading `closed` raises) or closed is replaced.
        let usable = wrapper.getattr(pyo3::intern!(py, "closed")).and_then(|c| c.is_truthy()).is_ok_and(|closed| !closed);
        if usable {
            *errors.get().core.lock().unwrap_or_else(|e| e.into_inner()) = Some(core.clone());
            return Ok((errors, wrapper));
        }
    }
    let errors = Py::new(py, Errors::new(core.clone()))?;
    let wrapper = text_wrapper(py, errors.bind(py).as_any())?;
    STREAMS.with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|(i, _, _)| *i != id);
        c.push((id, errors.clone_ref(py), wrapper.clone().unbind()));
    });
    Ok((errors, wrapper))
}

/// Ends the request's use of its `wsgi.errors`: the partial last line is logged against it, and
/// later writes go to the server log.
pub fn end_request_stream(errors: &Errors) {
    errors.flush_pending();
    *errors.core.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Wraps a log stream in `io.TextIOWrapper` as mod_wsgi does: UTF-8 (undecodable characters
/// escaped), each write passed through at once, lines kept whole by the stream itself.
pub fn text_wrapper<'py>(py: Python<'py>, raw: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("encoding", "utf-8")?;
    kwargs.set_item("errors", "backslashreplace")?;
    kwargs.set_item("line_buffering", true)?;
    kwargs.set_item("write_through", true)?;
    py.import("io")?.getattr("TextIOWrapper")?.call((raw,), Some(&kwargs))
}

/// Splits complete lines off `pending`, handing each to `emit`.
fn drain_lines(pending: &mut String, mut emit: impl FnMut(&str)) {
    if let Some(last_nl) = pending.rfind('\n') {
        for line in pending[..last_nl].split('\n') {
            emit(line);
        }
        pending.drain(..=last_nl);
    }
}

impl Errors {
    pub fn new(core: Core) -> Self {
        Errors { core: Mutex::new(Some(core)), pending: Mutex::new(String::new()) }
    }

    fn emit(&self, line: &str) {
        let core = self.core.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if core.is_none_or(|c| c.with(|s| s.io.log(Severity::Error, line)).is_err()) {
            tracing::error!("{line}");
        }
    }

    fn push(&self, py: Python<'_>, text: &str) {
        let mut lines = Vec::new();
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.push_str(text);
            drain_lines(&mut p, |l| lines.push(l.to_string()));
        }
        if !lines.is_empty() {
            // Logging takes the request's lock, which its own thread may hold through a slow
            // client write: never wait for it with the GIL held.
            py.detach(|| {
                for l in &lines {
                    self.emit(l);
                }
            });
        }
    }

    /// Logs a partial last line, if any.
    pub fn flush_pending(&self) {
        let rest = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !rest.is_empty() {
            self.emit(&rest);
        }
    }
}

/// One `#[pymethods]` block for a log stream: `$extra` plus the methods `io.TextIOWrapper`
/// needs from the binary stream under it.
macro_rules! log_stream_methods {
    ($t:ty { $($extra:tt)* }) => {
        #[pymethods]
        impl $t {
            $($extra)*
            fn writable(&self) -> bool {
                true
            }
            fn readable(&self) -> bool {
                false
            }
            fn seekable(&self) -> bool {
                false
            }
            #[getter]
            fn closed(&self) -> bool {
                false
            }
            /// The error log cannot be closed; the wrapper's close() at exit is a no-op here.
            fn close(&self) {}
            fn isatty(&self) -> bool {
                false
            }
            fn fileno(&self) -> PyResult<i32> {
                Err(pyo3::exceptions::PyOSError::new_err("the error log has no file descriptor"))
            }
        }
    };
}

log_stream_methods! { Errors {
    fn write(&self, s: &Bound<'_, PyAny>) -> PyResult<usize> {
        let (text, n) = text_of(s)?;
        self.push(s.py(), &text);
        Ok(n)
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for item in lines.try_iter()? {
            self.write(&item?)?;
        }
        Ok(())
    }

    fn flush(&self) {
        self.flush_pending();
    }
}}

/// The object installed as `sys.stdout` and `sys.stderr` in each process.
#[pyclass(module = "mod_wsgi", name = "ProcessLog", frozen)]
pub struct ProcessLog {
    name: &'static str,
    pending: Mutex<String>,
}

impl ProcessLog {
    pub fn new(name: &'static str) -> Self {
        ProcessLog { name, pending: Mutex::new(String::new()) }
    }
}

log_stream_methods! { ProcessLog {
    fn write(&self, py: Python<'_>, s: &Bound<'_, PyAny>) -> PyResult<usize> {
        let (text, n) = text_of(s)?;
        let routed = CURRENT.with(|c| match c.borrow().as_ref() {
            Some(e) => {
                e.bind(py).get().push(py, &text);
                true
            }
            None => false,
        });
        if !routed {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.push_str(&text);
            let name = self.name;
            drain_lines(&mut p, |l| tracing::error!(target: "wsgi", "({name}) {l}"));
        }
        Ok(n)
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for item in lines.try_iter()? {
            self.write(py, &item?)?;
        }
        Ok(())
    }

    fn flush(&self, py: Python<'_>) {
        CURRENT.with(|c| {
            if let Some(e) = c.borrow().as_ref() {
                e.bind(py).get().flush_pending();
            }
        });
        let rest = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !rest.is_empty() {
            tracing::error!(target: "wsgi", "({}) {rest}", self.name);
        }
    }

}}

/// What `sys.stdin` (WSGIRestrictStdin, on by default) and `sys.stdout` (WSGIRestrictStdout)
/// are replaced with: any use raises OSError naming the stream, as mod_wsgi does.
#[pyclass(module = "mod_wsgi", name = "Restricted", frozen)]
pub struct Restricted {
    name: &'static str,
}

impl Restricted {
    pub fn new(name: &'static str) -> Self {
        Restricted { name }
    }
}

#[pymethods]
impl Restricted {
    fn __getattr__(&self, _attr: &str) -> PyResult<()> {
        Err(pyo3::exceptions::PyOSError::new_err(format!("{} access restricted by mod_wsgi", self.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::drain_lines;

    #[test]
    fn lines_are_split_and_partial_kept() {
        let mut p = String::from("a\nb\nc");
        let mut out = vec![];
        drain_lines(&mut p, |l| out.push(l.to_string()));
        assert_eq!(out, ["a", "b"]);
        assert_eq!(p, "c");
        p.push_str("d\n");
        drain_lines(&mut p, |l| out.push(l.to_string()));
        assert_eq!(out, ["a", "b", "cd"]);
        assert!(p.is_empty());
    }
}
