//! mod_wsgi's events API and the Python side of its metrics API, as functions and attributes of
//! every interpreter's `mod_wsgi` module:
//!
//! - `subscribe_events(callback)` / `event_callbacks`: `callback(name, **event)` for
//!   `request_started`, `response_started`, `request_exception`, `request_finished` and
//!   `process_stopping`; a callback that returns a dict has it merged into the event for the
//!   callbacks after it (so a `request_started` callback can replace `application_object`).
//!   An exception in a callback is logged (with its traceback) and the request goes on.
//! - `subscribe_shutdown(callback)` / `shutdown_callbacks`: `process_stopping` only.
//! - `request_data()`: the current request's scratch dict (the `request_data` of its events);
//!   RuntimeError outside a request.
//! - `active_requests`: request id -> request_data of the requests in progress.
//! - `process_metrics()`, `start_recording_metrics()`, `request_metrics()`, `server_metrics()`
//!   (see [`super::metrics`]).
//!
//! Callback lists, `active_requests` and the module itself belong to one interpreter (they are
//! attributes of that interpreter's `mod_wsgi` module, found through a registry keyed by
//! interpreter); only the functions' definitions are shared.
//!
//! # What a request pays when nothing uses this
//!
//! One atomic load ([`MODE`]), a thread-local flag set and cleared (so that `request_data()`
//! knows a request is running and can make its dict on first use), and the always-on counters
//! of [`super::metrics`] (two clock reads). No dict, no Python call, no lock. `MODE` turns on,
//! for the rest of the process's life, with the first `subscribe_events()`,
//! `start_recording_metrics()` or look at `active_requests` in any interpreter; requests then
//! also read the clock and the thread's CPU time, and publish events where their interpreter has
//! subscribers. `active_requests` is made the first time it is looked at, and lists the requests
//! that started after that.

use std::cell::RefCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyAttributeError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule, PyString, PyTuple};

use super::core::Core;
use super::io::Severity;
use super::metrics::{self, Value};
use crate::codes;

/// `subscribe_events()` was called in some interpreter.
const EVENTS: u8 = 1;
/// `start_recording_metrics()` was called.
const RECORD: u8 = 2;
/// `active_requests` was looked at.
const ACTIVE: u8 = 4;

/// What this process does per request beyond the basics (bits above; 0: nothing).
static MODE: AtomicU8 = AtomicU8::new(0);

/// `subscribe_shutdown()` was called in some interpreter.
static SHUTDOWN_SUBSCRIBED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether any interpreter may have a `process_stopping` subscriber (`subscribe_events()` or
/// `subscribe_shutdown()` was called): otherwise a process's exit need not visit each
/// interpreter for it.
pub fn stopping_subscribed() -> bool {
    mode() & EVENTS != 0 || SHUTDOWN_SUBSCRIBED.load(Ordering::Relaxed)
}

fn mode() -> u8 {
    MODE.load(Ordering::Relaxed)
}

/// Whether requests are tracked (events, metrics or active_requests in use): they then measure
/// times, the GIL waits included.
pub fn tracking() -> bool {
    mode() != 0
}

// ---------------------------------------------------------------------------------------------
// The mod_wsgi module of each interpreter
// ---------------------------------------------------------------------------------------------

/// Each interpreter's `mod_wsgi` module, by interpreter. Used only with the GIL held, in the
/// interpreter it belongs to; never released (interpreters live as long as the process).
static MODULES: Mutex<Vec<(usize, Py<PyModule>)>> = Mutex::new(Vec::new());

/// The current interpreter's `mod_wsgi` module, if it was set up.
fn this_module(py: Python<'_>) -> Option<Bound<'_, PyModule>> {
    let id = crate::python::pool::current_interpreter_id(py);
    let modules = MODULES.lock().unwrap_or_else(|e| e.into_inner());
    modules.iter().find(|(i, _)| *i == id).map(|(_, m)| m.bind(py).clone())
}

/// An attribute of the module that is a list (without running the module's `__getattr__`).
fn module_list<'py>(m: &Bound<'py, PyModule>, name: &str) -> Option<Bound<'py, PyList>> {
    m.dict().get_item(name).ok().flatten().and_then(|v| v.cast_into::<PyList>().ok())
}

/// Adds the events and metrics API to `m`, the `mod_wsgi` module of the current interpreter.
pub fn install(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.setattr("event_callbacks", PyList::empty(py))?;
    m.setattr("shutdown_callbacks", PyList::empty(py))?;
    m.add_function(wrap_pyfunction!(subscribe_events, m)?)?;
    m.add_function(wrap_pyfunction!(subscribe_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(request_data, m)?)?;
    m.add_function(wrap_pyfunction!(process_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(start_recording_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(request_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(server_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(module_getattr, m)?)?;
    let id = crate::python::pool::current_interpreter_id(py);
    let mut modules = MODULES.lock().unwrap_or_else(|e| e.into_inner());
    modules.retain(|(i, _)| *i != id);
    modules.push((id, m.clone().unbind()));
    Ok(())
}

/// `mod_wsgi.subscribe_events(callback)`: `callback(name, **event)` for every event of this
/// interpreter. Returns the callback (usable as a decorator).
#[pyfunction]
fn subscribe_events<'py>(py: Python<'py>, callback: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    append_callback(py, "event_callbacks", &callback)?;
    MODE.fetch_or(EVENTS, Ordering::SeqCst);
    Ok(callback)
}

/// Appends `callback` to the list `name` of this interpreter's `mod_wsgi` module.
fn append_callback(py: Python<'_>, name: &str, callback: &Bound<'_, PyAny>) -> PyResult<()> {
    let m = this_module(py).ok_or_else(|| PyRuntimeError::new_err("mod_wsgi is not set up in this interpreter"))?;
    m.getattr(name)?.cast_into::<PyList>()?.append(callback)
}

/// `mod_wsgi.subscribe_shutdown(callback)`: `callback('process_stopping', **event)` when the
/// process stops. Returns the callback.
#[pyfunction]
fn subscribe_shutdown<'py>(py: Python<'py>, callback: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    append_callback(py, "shutdown_callbacks", &callback)?;
    SHUTDOWN_SUBSCRIBED.store(true, Ordering::Relaxed);
    Ok(callback)
}

/// The module's `__getattr__` (PEP 562): `active_requests` is made on first use, which turns
/// on the tracking of requests.
#[pyfunction]
#[pyo3(name = "__getattr__")]
fn module_getattr<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    if name == "active_requests" {
        if let Some(m) = this_module(py) {
            let d = PyDict::new(py);
            m.setattr("active_requests", &d)?;
            MODE.fetch_or(ACTIVE, Ordering::SeqCst);
            return Ok(d.into_any());
        }
    }
    Err(PyAttributeError::new_err(format!("module 'mod_wsgi' has no attribute '{name}'")))
}

/// `mod_wsgi.request_data()`: the running request's scratch dict.
#[pyfunction]
fn request_data(py: Python<'_>) -> PyResult<Py<PyDict>> {
    CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(cur) => Ok(cur.data.get_or_insert_with(|| PyDict::new(py).unbind()).clone_ref(py)),
        None => Err(PyRuntimeError::new_err("no active request for thread")),
    })
}

fn to_dict<'py>(py: Python<'py>, items: Vec<(&'static str, Value)>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in items {
        match v {
            Value::Int(i) => d.set_item(k, i)?,
            Value::Float(f) => d.set_item(k, f)?,
            Value::None => d.set_item(k, py.None())?,
            Value::List(l) => d.set_item(k, l)?,
            Value::FloatList(l) => d.set_item(k, l)?,
            Value::Threads(t) => {
                let list = PyList::empty(py);
                for (id, n) in t {
                    let e = PyDict::new(py);
                    e.set_item("thread_id", id)?;
                    e.set_item("request_count", n)?;
                    list.append(e)?;
                }
                d.set_item(k, list)?
            }
        }
    }
    Ok(d)
}

/// `mod_wsgi.process_metrics()`: this process since it started.
#[pyfunction]
fn process_metrics(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let items = py.detach(metrics::process_metrics);
    to_dict(py, items)
}

/// `mod_wsgi.start_recording_metrics()`: from now on `request_metrics()` has data; this
/// interpreter's first interval starts now. Idempotent.
#[pyfunction]
fn start_recording_metrics(py: Python<'_>) {
    let reader = crate::python::pool::current_interpreter_id(py);
    py.detach(|| metrics::start_recording(reader));
    MODE.fetch_or(RECORD, Ordering::SeqCst);
}

/// `mod_wsgi.request_metrics()`: the requests since this interpreter's previous call, or `None`
/// until recording was started.
#[pyfunction]
fn request_metrics(py: Python<'_>) -> PyResult<Option<Bound<'_, PyDict>>> {
    let reader = crate::python::pool::current_interpreter_id(py);
    match py.detach(|| metrics::request_metrics(reader)) {
        Some(items) => to_dict(py, items).map(Some),
        None => Ok(None),
    }
}

/// `mod_wsgi.server_metrics()`: a copy of Apache's scoreboard in an Apache child whose server
/// has `WSGIServerMetrics On` and in the processes of a daemon group with `server-metrics=On`;
/// `None` otherwise (as mod_wsgi answers when server metrics are not enabled).
#[pyfunction]
fn server_metrics(py: Python<'_>) -> PyResult<Option<Bound<'_, PyDict>>> {
    let Some(s) = py.detach(metrics::server_snapshot) else { return Ok(None) };
    let d = PyDict::new(py);
    d.set_item("server_limit", s.server_limit)?;
    d.set_item("thread_limit", s.thread_limit)?;
    d.set_item("running_generation", s.running_generation)?;
    d.set_item("restart_time", s.restart_time)?;
    d.set_item("current_time", s.current_time)?;
    d.set_item("running_time", (s.current_time - s.restart_time).max(0.0) as i64)?;
    let processes = PyList::empty(py);
    for p in s.processes {
        let pd = PyDict::new(py);
        pd.set_item("process_num", p.process_num)?;
        pd.set_item("pid", p.pid)?;
        pd.set_item("generation", p.generation)?;
        pd.set_item("quiescing", p.quiescing)?;
        let workers = PyList::empty(py);
        for w in p.workers {
            let wd = PyDict::new(py);
            wd.set_item("thread_num", w.thread_num)?;
            wd.set_item("generation", w.generation)?;
            wd.set_item("status", w.status.to_string())?;
            wd.set_item("access_count", w.access_count)?;
            wd.set_item("bytes_served", w.bytes_served)?;
            wd.set_item("start_time", w.start_time)?;
            wd.set_item("stop_time", w.stop_time)?;
            wd.set_item("last_used", w.last_used)?;
            wd.set_item("client", w.client)?;
            wd.set_item("request", w.request)?;
            wd.set_item("vhost", w.vhost)?;
            workers.append(wd)?;
        }
        pd.set_item("workers", workers)?;
        processes.append(pd)?;
    }
    d.set_item("processes", processes)?;
    Ok(Some(d))
}

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

/// Where a callback's failure is logged.
#[derive(Clone, Copy)]
enum Sink<'a> {
    Request(&'a Core),
    Process,
}

impl Sink<'_> {
    fn log(&self, line: &str) {
        match self {
            Sink::Request(core) => core.log(Severity::Error, line),
            Sink::Process => tracing::error!(target: "wsgi", "{line}"),
        }
    }
}

/// Calls each callback of `callbacks` with `(name, **event)`; a dict returned is merged into
/// `event` for the callbacks after it. Failures are logged, never raised.
fn call_callbacks(py: Python<'_>, callbacks: &Bound<'_, PyList>, name: &str, event: &Bound<'_, PyDict>, sink: Sink<'_>) {
    // A snapshot: a callback that subscribes another does not change this round.
    let list: Vec<Bound<'_, PyAny>> = callbacks.iter().collect();
    for cb in list {
        match cb.call((name,), Some(event)) {
            Ok(r) => {
                if let Ok(d) = r.cast::<PyDict>() {
                    if let Err(e) = event.update(d.as_mapping()) {
                        log_failure(py, &cb, name, &e, sink);
                    }
                }
            }
            Err(e) => log_failure(py, &cb, name, &e, sink),
        }
    }
}

fn log_failure(py: Python<'_>, cb: &Bound<'_, PyAny>, name: &str, e: &PyErr, sink: Sink<'_>) {
    let who = cb
        .getattr(pyo3::intern!(py, "__qualname__"))
        .and_then(|q| q.extract::<String>())
        .or_else(|_| cb.repr().map(|r| r.to_string()))
        .unwrap_or_else(|_| "?".into());
    let code = codes::EVENT_CALLBACK_FAILED;
    sink.log(&format!("{code}: the mod_wsgi event callback {who} raised an exception for event '{name}'; it was ignored"));
    for line in super::response::format_exception(py, e) {
        sink.log(&format!("{code}: {line}"));
    }
}

/// Publishes `process_stopping` (with `shutdown_reason`) to the current interpreter's
/// `event_callbacks` and `shutdown_callbacks`. For process exit, before `atexit`.
pub fn process_stopping(py: Python<'_>, reason: &str) {
    let Some(m) = this_module(py) else { return };
    let all = module_list(&m, "event_callbacks").filter(|l| !l.is_empty());
    let shutdown = module_list(&m, "shutdown_callbacks").filter(|l| !l.is_empty());
    if all.is_none() && shutdown.is_none() {
        return;
    }
    let event = PyDict::new(py);
    if event.set_item("shutdown_reason", reason).is_err() {
        return;
    }
    for list in [all, shutdown].into_iter().flatten() {
        call_callbacks(py, &list, "process_stopping", &event, Sink::Process);
    }
}

// ---------------------------------------------------------------------------------------------
// One request
// ---------------------------------------------------------------------------------------------

/// What the request running on this thread keeps for the Python side.
#[derive(Default)]
struct Current {
    /// `request_data()`'s dict (made on first use when nothing else needed it).
    data: Option<Py<PyDict>>,
    /// Set when the request is tracked (events published or listed in active_requests).
    request_id: Option<Py<PyString>>,
    /// The interpreter's `event_callbacks`, when it had subscribers as the request started.
    callbacks: Option<Py<PyList>>,
    /// The `active_requests` dict the request was added to.
    listed_in: Option<Py<PyDict>>,
    thread_id: u64,
}

thread_local! {
    /// The request this thread is running (set by [`begin`], cleared when its [`Track`] ends).
    /// Holds Python objects only while a request runs, with the GIL held by this thread.
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// When a request reached each stage before the application (microseconds since the epoch;
/// 0: unknown or not applicable), and the Apache child that took it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing {
    /// Apache read the request (`r->request_time`); 0: from the `mod_wsgi.request_start` CGI
    /// variable.
    pub request_start: i64,
    /// The Apache child sent the request to the daemon (daemon mode).
    pub queue_start: i64,
    /// The daemon process read it (daemon mode).
    pub daemon_start: i64,
    /// Process id of the Apache child that accepted the request (0: unknown).
    pub server_pid: u32,
}

/// The accounting of one request from [`begin`] to the end of `serve` (dropped there).
pub struct Track {
    ticket: Option<metrics::Ticket>,
    mode: u8,
    /// Whether events go to this interpreter's subscribers.
    publishing: bool,
    timing: Timing,
    request_start: f64,
    application_start: f64,
    cpu_start: Option<(f64, f64)>,
    entry_gil_wait: Option<Duration>,
}

fn secs(us: i64) -> f64 {
    us as f64 / 1e6
}

/// A request starts on this thread (in the current interpreter, GIL held).
pub fn begin(py: Python<'_>, call: &super::Call<'_>) -> Track {
    let ticket = metrics::begin();
    let mode = mode();
    let thread_id = ticket.thread_id();
    let mut cur = Current { thread_id, ..Current::default() };
    let mut track = Track {
        ticket: Some(ticket),
        mode,
        publishing: false,
        timing: call.timing,
        request_start: 0.0,
        application_start: 0.0,
        cpu_start: None,
        entry_gil_wait: None,
    };
    if mode != 0 {
        track.application_start = metrics::wall_now();
        track.entry_gil_wait = crate::python::pool::take_entry_wait();
        let request_start = if call.timing.request_start > 0 {
            call.timing.request_start
        } else {
            call.cgi
                .iter()
                .find(|(k, _)| *k == "mod_wsgi.request_start")
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0)
        };
        track.request_start = secs(request_start);
        if mode & (EVENTS | RECORD) != 0 {
            track.cpu_start = Some(crate::sys::process::cpu_times(true));
        }
        if mode & (EVENTS | ACTIVE) != 0 {
            if let Some(m) = this_module(py) {
                let callbacks = if mode & EVENTS != 0 { module_list(&m, "event_callbacks").filter(|l| !l.is_empty()) } else { None };
                let mut active = m.dict().get_item("active_requests").ok().flatten().and_then(|d| d.cast_into::<PyDict>().ok());
                if active.is_none() && callbacks.is_some() {
                    // With subscribers, requests are listed from the first one on.
                    let d = PyDict::new(py);
                    if m.setattr("active_requests", &d).is_ok() {
                        active = Some(d);
                    }
                }
                if callbacks.is_some() || active.is_some() {
                    let data = PyDict::new(py);
                    let id = PyString::new(py, call.info.request_id);
                    if let Some(active) = &active {
                        if active.set_item(&id, &data).is_ok() {
                            cur.listed_in = Some(active.clone().unbind());
                        }
                    }
                    track.publishing = callbacks.is_some();
                    cur.callbacks = callbacks.map(Bound::unbind);
                    cur.data = Some(data.unbind());
                    cur.request_id = Some(id.unbind());
                }
            }
        }
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(cur));
    track
}

/// (request id, request_data, thread id, callbacks) of the running request when it publishes.
type Publishing = (Py<PyString>, Py<PyDict>, u64, Py<PyList>);

fn publishing_state(py: Python<'_>) -> Option<Publishing> {
    CURRENT.with(|c| {
        let c = c.borrow();
        let cur = c.as_ref()?;
        Some((cur.request_id.as_ref()?.clone_ref(py), cur.data.as_ref()?.clone_ref(py), cur.thread_id, cur.callbacks.as_ref()?.clone_ref(py)))
    })
}

/// A new event dict with the keys every request event has.
fn request_event<'py>(py: Python<'py>, id: &Py<PyString>, data: &Py<PyDict>, thread_id: u64) -> PyResult<Bound<'py, PyDict>> {
    let e = PyDict::new(py);
    e.set_item("request_id", id.bind(py))?;
    e.set_item("thread_id", thread_id)?;
    e.set_item("request_data", data.bind(py))?;
    Ok(e)
}

impl Track {
    /// The keys request_started and request_finished share: the server's pid and when the
    /// request reached each stage.
    fn put_times(&self, e: &Bound<'_, PyDict>) -> PyResult<()> {
        let t = self.timing;
        e.set_item("server_pid", if t.server_pid != 0 { t.server_pid } else { std::process::id() })?;
        e.set_item("request_start", self.request_start)?;
        e.set_item("queue_start", secs(t.queue_start))?;
        e.set_item("daemon_start", secs(t.daemon_start))?;
        e.set_item("application_start", self.application_start)
    }

    /// Whether the request's I/O is timed.
    pub fn timed(&self) -> bool {
        self.mode != 0
    }

    /// `mod_wsgi.thread_id` and `mod_wsgi.thread_requests` of the environ.
    pub fn thread(&self) -> (u64, u64) {
        self.ticket.as_ref().map_or((0, 0), |t| (t.thread_id(), t.thread_requests()))
    }

    /// Publishes `request_started` just before the application is called; returns the
    /// application to call (a subscriber may have replaced `application_object`).
    pub fn started<'py>(&mut self, py: Python<'py>, app: &Bound<'py, PyAny>, environ: &Bound<'py, PyDict>, core: &Core) -> Bound<'py, PyAny> {
        if !self.publishing {
            return app.clone();
        }
        let Some((id, data, thread_id, callbacks)) = publishing_state(py) else { return app.clone() };
        let t = self.timing;
        let event = (|| -> PyResult<Bound<'py, PyDict>> {
            let e = request_event(py, &id, &data, thread_id)?;
            e.set_item("daemon_connects", i64::from(t.queue_start > 0))?;
            e.set_item("daemon_restarts", 0)?;
            self.put_times(&e)?;
            e.set_item("application_object", app)?;
            e.set_item("request_environ", environ)?;
            Ok(e)
        })();
        match event {
            Ok(e) => {
                call_callbacks(py, callbacks.bind(py), "request_started", &e, Sink::Request(core));
                match e.get_item("application_object") {
                    Ok(Some(replaced)) => replaced,
                    _ => app.clone(),
                }
            }
            Err(e) => {
                super::response::log_exception(py, core, codes::EVENT_CALLBACK_FAILED, "cannot build the request_started event", &e);
                app.clone()
            }
        }
    }

    /// The application (and `close()`) returned: publishes `request_finished` and records the
    /// request for `request_metrics()`.
    pub fn finished(&mut self, py: Python<'_>, core: &Core) {
        if self.mode == 0 {
            return;
        }
        let finish = metrics::wall_now();
        let (stats, status) = core.with(|s| (s.stats, s.response.head.as_ref().map_or(0, |h| h.code))).unwrap_or_default();
        let (mut gil_wait, mut gil_waits) = (stats.gil_wait, stats.gil_waits);
        if let Some(w) = self.entry_gil_wait {
            gil_wait += w;
            gil_waits += 1;
        }
        let (cpu_user, cpu_system) = match self.cpu_start {
            Some((u0, s0)) => {
                let (u1, s1) = crate::sys::process::cpu_times(true);
                ((u1 - u0).max(0.0), (s1 - s0).max(0.0))
            }
            None => (0.0, 0.0),
        };
        let t = self.timing;
        if self.publishing {
            if let Some((id, data, thread_id, callbacks)) = publishing_state(py) {
                let event = (|| -> PyResult<Bound<'_, PyDict>> {
                    let e = request_event(py, &id, &data, thread_id)?;
                    self.put_times(&e)?;
                    e.set_item("application_finish", finish)?;
                    e.set_item("application_time", (finish - self.application_start).max(0.0))?;
                    e.set_item("input_reads", stats.input_reads)?;
                    e.set_item("input_length", stats.input_bytes)?;
                    e.set_item("input_time", stats.input_time.as_secs_f64())?;
                    e.set_item("output_writes", stats.output_writes)?;
                    e.set_item("output_length", stats.output_bytes)?;
                    e.set_item("output_time", stats.output_time.as_secs_f64())?;
                    e.set_item("status", status)?;
                    e.set_item("cpu_user_time", cpu_user)?;
                    e.set_item("cpu_system_time", cpu_system)?;
                    e.set_item("cpu_time", cpu_user + cpu_system)?;
                    e.set_item("gil_wait_time", gil_wait.as_secs_f64())?;
                    e.set_item("gil_wait_count", gil_waits)?;
                    Ok(e)
                })();
                match event {
                    Ok(e) => call_callbacks(py, callbacks.bind(py), "request_finished", &e, Sink::Request(core)),
                    Err(e) => super::response::log_exception(py, core, codes::EVENT_CALLBACK_FAILED, "cannot build the request_finished event", &e),
                }
            }
        }
        if self.mode & RECORD != 0 {
            metrics::record(&metrics::Sample {
                request_start: self.request_start,
                queue_start: secs(t.queue_start),
                daemon_start: secs(t.daemon_start),
                application_start: self.application_start,
                application_finish: finish,
                input_read_time: stats.input_time.as_secs_f64(),
                output_write_time: stats.output_time.as_secs_f64(),
                gil_wait_time: gil_wait.as_secs_f64(),
                gil_wait_count: gil_waits,
                input_bytes: stats.input_bytes,
                input_reads: stats.input_reads,
                output_bytes: stats.output_bytes,
                output_writes: stats.output_writes,
                status,
            });
        }
    }
}

impl Drop for Track {
    fn drop(&mut self) {
        // `serve` holds the GIL in the request's interpreter until after this runs (also when
        // unwinding), so the objects are released here, in the right interpreter.
        let cur = CURRENT.try_with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.take())).ok().flatten();
        if let Some(cur) = cur {
            if let (Some(active), Some(id)) = (cur.listed_in, cur.request_id) {
                Python::attach(|py| {
                    let _ = active.bind(py).del_item(id.bind(py));
                });
            }
        }
        if let Some(t) = self.ticket.take() {
            metrics::end(t);
        }
    }
}

/// Publishes `response_started` for the running request: the application called
/// `start_response(status, headers, exc_info)` and it was accepted.
pub fn response_started(py: Python<'_>, core: &Core, status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>, exc_info: Option<&Bound<'_, PyAny>>) {
    if mode() & EVENTS == 0 {
        return;
    }
    let Some((id, data, thread_id, callbacks)) = publishing_state(py) else { return };
    let event = (|| -> PyResult<Bound<'_, PyDict>> {
        let e = request_event(py, &id, &data, thread_id)?;
        e.set_item("response_status", status)?;
        e.set_item("response_headers", headers)?;
        e.set_item("exception_info", exc_info.map_or_else(|| py.None().into_bound(py), |x| x.clone()))?;
        Ok(e)
    })();
    if let Ok(e) = event {
        call_callbacks(py, callbacks.bind(py), "response_started", &e, Sink::Request(core));
    }
}

/// Publishes `request_exception` for the running request: the application (or its iterable's
/// `close()`) raised `err`, which was logged.
pub fn request_exception(py: Python<'_>, core: &Core, err: &PyErr) {
    if mode() & EVENTS == 0 {
        return;
    }
    let Some((id, data, thread_id, callbacks)) = publishing_state(py) else { return };
    let event = (|| -> PyResult<Bound<'_, PyDict>> {
        let e = request_event(py, &id, &data, thread_id)?;
        let tb = err.traceback(py).map_or_else(|| py.None().into_bound(py), |t| t.into_any());
        let info = PyTuple::new(py, [err.get_type(py).into_any(), err.value(py).clone().into_any(), tb])?;
        e.set_item("exception_info", info)?;
        Ok(e)
    })();
    if let Ok(e) = event {
        call_callbacks(py, callbacks.bind(py), "request_exception", &e, Sink::Request(core));
    }
}
