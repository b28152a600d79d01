//! Interrupting a request's thread: `mod_wsgi.RequestTimeout` raised in it from another thread
//! (daemon mode's `interrupt-timeout`).
//!
//! CPython can raise an exception asynchronously in another thread (`PyThreadState_SetAsyncExc`):
//! the exception is stored on the target's thread state and raised the next time that thread
//! runs bytecode. It names the thread by its identifier and searches only the thread states of
//! the *current* interpreter, so the caller must hold the GIL in the interpreter the request
//! runs in ([`super::pool::enter`] with the request's application group). A thread blocked in C
//! (a socket read, `time.sleep`) raises it only once the call returns; a thread that never runs
//! bytecode again never raises it.
//!
//! An exception scheduled for a request that ends before raising it must not hit the next
//! request on the thread: [`discard_pending`] takes it back.

use std::os::raw::c_long;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

use super::pool;

/// A thread running a request, as seen from the interpreter the request runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PyThread {
    interp: usize,
    ident: u64,
}

impl PyThread {
    /// The thread's identifier (`threading.get_ident()` in it).
    pub fn ident(&self) -> u64 {
        self.ident
    }
}

/// This thread in the interpreter whose thread state is current (call with the GIL held, inside
/// the request's [`pool::enter`]).
pub fn this_thread(py: Python<'_>) -> PyThread {
    // SAFETY: PyThread_get_thread_ident only reads the calling thread's identifier (it needs no
    // GIL); it is the value CPython stored as `thread_id` in this thread's thread states.
    let ident = unsafe { ffi::PyThread_get_thread_ident() } as u64;
    PyThread { interp: pool::current_interpreter_id(py), ident }
}

/// The current interpreter's `mod_wsgi.RequestTimeout` class.
pub fn request_timeout_class(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    let class = py.import("sys")?.getattr("modules")?.get_item("mod_wsgi")?.getattr("RequestTimeout")?;
    let class = class.cast_into::<PyType>().map_err(PyErr::from)?;
    if !class.is_subclass_of::<pyo3::exceptions::PyBaseException>()? {
        return Err(pyo3::exceptions::PyTypeError::new_err("mod_wsgi.RequestTimeout is not an exception class"));
    }
    Ok(class)
}

/// Schedules `class` (from [`request_timeout_class`]) to be raised in `target` the next time it
/// runs bytecode. Call with the GIL held in `target`'s interpreter. Runs no Python code.
pub fn raise_in(py: Python<'_>, target: PyThread, class: &Bound<'_, PyType>) -> Result<(), String> {
    if pool::current_interpreter_id(py) != target.interp {
        return Err("not called in the interpreter the request runs in".into());
    }
    // SAFETY: the `Python` token proves the GIL is held, and the current interpreter is the
    // target's (checked above), whose thread states PyThreadState_SetAsyncExc searches (under
    // the runtime's own lock). `class` is a live exception class (checked by
    // request_timeout_class); CPython takes its own reference. The identifier is CPython's
    // `unsigned long`, passed through pyo3's `c_long` declaration bit for bit.
    let found = unsafe { ffi::PyThreadState_SetAsyncExc(target.ident as c_long, class.as_ptr()) };
    if found == 0 {
        return Err(format!("thread {} has no thread state in the request's interpreter", target.ident));
    }
    Ok(())
}

/// Takes back an exception scheduled in this thread by [`raise_in`] that it has not raised yet
/// (the request ended first). Call with the GIL held in the interpreter it was scheduled in.
pub fn discard_pending(py: Python<'_>) {
    // Running any bytecode raises a pending asynchronous exception, which also lowers the
    // interpreter's "something is pending" flag (setting the exception back to NULL would leave
    // the flag up, sending every thread of the interpreter through the slow path of the eval
    // loop until some thread raises an asynchronous exception).
    let globals = PyDict::new(py);
    let _ = py.run(c"pass", Some(&globals), None);
    let me = this_thread(py);
    // SAFETY: the GIL is held in the current interpreter, which holds this thread's state; a
    // NULL exception clears whatever is still scheduled for it (normally nothing by now).
    unsafe { ffi::PyThreadState_SetAsyncExc(me.ident as c_long, std::ptr::null_mut()) };
}

/// The Python stack of thread `ident`, formatted (empty if it runs no Python code). Runs Python
/// code in the current interpreter.
pub fn stack(py: Python<'_>, ident: u64) -> PyResult<Vec<String>> {
    let frames = py.import("sys")?.call_method0("_current_frames")?;
    let Some(frame) = frames.cast_into::<PyDict>().map_err(PyErr::from)?.get_item(ident)? else { return Ok(Vec::new()) };
    let lines: Vec<String> = py.import("traceback")?.call_method1("format_stack", (frame,))?.extract()?;
    Ok(lines.concat().lines().map(str::to_string).collect())
}
