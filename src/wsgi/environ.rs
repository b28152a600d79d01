//! Builds the WSGI environ dict.
//!
//! The constant part (wsgi.version, wsgi.run_once, wsgi.file_wrapper, mod_wsgi.version, ...) is
//! made once per process as a template and copied per request; per-request values are added to
//! the copy. CGI values arrive as raw bytes and are decoded as latin-1, as PEP 3333 requires.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};

use super::core::Core;
use super::file_wrapper::FileWrapper;
use super::input::Input;

/// Facts about the process that do not change between requests.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub multithread: bool,
    pub multiprocess: bool,
    /// Daemon group name, `""` in embedded mode.
    pub process_group: String,
    /// Apache's version as (major, minor, patch).
    pub apache_version: (u32, u32, u32),
    /// `mod_wsgi.maximum_processes`: Apache's process limit (embedded) or `processes=` (daemon).
    pub maximum_processes: u32,
    /// `mod_wsgi.threads_per_process`: threads per Apache child (embedded) or `threads=`.
    pub threads_per_process: u32,
    /// Apache's MPM, for the `apache` Python module.
    pub mpm: ApacheMpm,
}

/// Apache's MPM as the `apache` Python module reports it (the same in Apache children and
/// daemon processes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApacheMpm {
    /// `ap_show_mpm()`: `"event"`, `"worker"`, `"prefork"`.
    pub name: String,
    /// The MPM's limit of child processes.
    pub maximum_processes: u32,
    /// Threads per child (1 for prefork).
    pub threads_per_process: u32,
}

/// Per-request values that are not CGI variables.
pub struct RequestInfo<'a> {
    pub url_scheme: &'a str,
    pub application_group: &'a str,
    pub callable_object: &'a str,
    pub script_reloading: bool,
    pub request_id: &'a str,
}

static TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// The version this module reports as `mod_wsgi.version`.
pub const VERSION: (u32, u32, u32) = (5, 0, 0);

/// Creates the per-process template. Call once after Python is initialised.
pub fn init_template(py: Python<'_>, info: &ProcessInfo) -> PyResult<()> {
    let d = PyDict::new(py);
    d.set_item("wsgi.version", (1, 0))?;
    d.set_item("wsgi.multithread", info.multithread)?;
    d.set_item("wsgi.multiprocess", info.multiprocess)?;
    d.set_item("wsgi.run_once", false)?;
    d.set_item("wsgi.input_terminated", true)?;
    d.set_item("mod_wsgi.handler_script", "")?;
    d.set_item("mod_wsgi.ignore_activity", "0")?;
    d.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
    d.set_item("mod_wsgi.process_group", info.process_group.as_str())?;
    d.set_item("mod_wsgi.version", VERSION)?;
    d.set_item("apache.version", info.apache_version)?;
    let _ = TEMPLATE.set(py, d.unbind());
    Ok(())
}

/// A fresh copy of the per-process template (the constant environ keys).
pub fn template<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    match TEMPLATE.get(py) {
        Some(t) => t.bind(py).copy(),
        None => Err(pyo3::exceptions::PyRuntimeError::new_err("environ template not initialised")),
    }
}

/// Decodes bytes as latin-1 (every byte maps to the code point of the same value).
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    crate::python::bytes::latin1(py, bytes)
}

/// Builds the environ for one request.
///
/// `cgi` holds the CGI variables (name, raw value) as the server computed them; `thread` is
/// (`mod_wsgi.thread_id`, `mod_wsgi.thread_requests`).
pub fn build<'py>(
    py: Python<'py>,
    cgi: &[(&str, &[u8])],
    req: &RequestInfo<'_>,
    core: &Core,
    errors: &Bound<'py, PyAny>,
    thread: (u64, u64),
) -> PyResult<Bound<'py, PyDict>> {
    let d = template(py)?;
    KEYS.with(|cache| -> PyResult<()> {
        let mut cache = cache.borrow_mut();
        for (k, v) in cgi {
            let key = match cache.get(*k) {
                Some(key) => key.bind(py).clone(),
                None => {
                    let key = PyString::intern(py, k);
                    // Bounded: arbitrary request headers must not grow it without limit.
                    if cache.len() < 256 {
                        cache.insert((*k).into(), key.clone().unbind());
                    }
                    key
                }
            };
            d.set_item(key, latin1(py, v)?)?;
        }
        Ok(())
    })?;
    d.set_item(pyo3::intern!(py, "wsgi.url_scheme"), req.url_scheme)?;
    d.set_item(pyo3::intern!(py, "wsgi.input"), Py::new(py, Input { core: core.clone() })?)?;
    d.set_item(pyo3::intern!(py, "wsgi.errors"), errors)?;
    d.set_item(pyo3::intern!(py, "mod_wsgi.application_group"), req.application_group)?;
    d.set_item(pyo3::intern!(py, "mod_wsgi.callable_object"), req.callable_object)?;
    d.set_item(
        pyo3::intern!(py, "mod_wsgi.script_reloading"),
        if req.script_reloading { "1" } else { "0" },
    )?;
    d.set_item(pyo3::intern!(py, "mod_wsgi.request_id"), req.request_id)?;
    let (thread_id, thread_requests) = thread;
    d.set_item(pyo3::intern!(py, "mod_wsgi.thread_id"), thread_id)?;
    d.set_item(pyo3::intern!(py, "mod_wsgi.thread_requests"), thread_requests)?;
    d.set_item(pyo3::intern!(py, "mod_wsgi.total_requests"), TOTAL.fetch_add(1, Ordering::Relaxed))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    d.set_item(pyo3::intern!(py, "mod_wsgi.script_start"), now.to_string())?;
    Ok(d)
}

thread_local! {
    /// CGI variable names seen on this thread, as interned Python strings (made once, not per
    /// request).
    static KEYS: std::cell::RefCell<std::collections::HashMap<Box<str>, Py<PyString>, KeyHash>> = std::cell::RefCell::new(std::collections::HashMap::default());
}
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// The key cache's hash: the keys are short CGI names looked up ~40 times a request, and the
/// cache is per thread and bounded, so a DoS-resistant hash buys nothing there. Eight bytes a
/// step (multiply and rotate), the tail zero-padded with its length mixed in.
#[derive(Default)]
struct KeyHasher(u64);

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(MIX)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(MIX).rotate_left(31);
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59)).wrapping_mul(MIX).rotate_left(31);
        self.0 = h;
    }
}

type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;
