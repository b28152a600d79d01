//! The WSGI adapter (PEP 3333), written once over [`io::RequestIo`] so that embedded mode (Apache
//! request) and daemon mode (socket to the Apache child) share every line of it.

pub mod core;
pub mod environ;
pub mod errors;
pub mod events;
pub mod file_wrapper;
pub mod hooks;
pub mod input;
pub mod io;
pub mod metrics;
pub mod response;
pub mod start_response;
pub mod validate;

use pyo3::prelude::*;

pub use self::core::Core;
pub use self::events::Timing;
pub use self::io::{IoError, RequestIo, ResponseHead, Severity};
pub use self::response::Outcome;

/// Creates the type objects of every Python-visible type of the adapter. Called once, in the
/// main interpreter, before any sub-interpreter exists: the types are then shared by all
/// interpreters of the process (see `crate::python::pool` for why that is sound).
pub fn init_types(py: Python<'_>) -> PyResult<()> {
    py.get_type::<errors::Errors>();
    py.get_type::<errors::ProcessLog>();
    py.get_type::<input::Input>();
    py.get_type::<start_response::StartResponse>();
    py.get_type::<start_response::Write>();
    py.get_type::<file_wrapper::FileWrapper>();
    py.get_type::<errors::Restricted>();
    Ok(())
}

/// Everything needed to serve one request once the application callable is known.
pub struct Call<'a> {
    pub cgi: &'a [(&'a str, &'a [u8])],
    pub info: environ::RequestInfo<'a>,
    pub script: &'a str,
    /// When the request reached the server (and the daemon), for events and metrics.
    pub timing: Timing,
}

/// Serves one request: builds environ, runs the application, sends the response, calls close().
/// Returns the outcome and the server-side I/O object: on [`Outcome::Complete`] the caller
/// calls [`RequestIo::finish`] on it once the GIL is released.
pub fn serve(py: Python<'_>, app: &Bound<'_, PyAny>, call: &Call<'_>, io: Box<dyn RequestIo>) -> (Outcome, Option<Box<dyn RequestIo>>) {
    // Events and metrics of this request: ends (and leaves `mod_wsgi.active_requests`) when
    // dropped at the end of this function, also when unwinding.
    let mut track = events::begin(py, call);
    let core = Core::new(io, track.timed());
    // Should anything below unwind, the request still ends here: no Python object (nor
    // sys.stdout on this thread) may keep reaching the server's request afterwards.
    struct EndOnUnwind(Core);
    impl Drop for EndOnUnwind {
        fn drop(&mut self) {
            if std::thread::panicking() {
                errors::clear_current();
                self.0.finish();
            }
        }
    }
    let _end = EndOnUnwind(core.clone());
    let (errors, stream) = match errors::request_stream(py, &core) {
        Ok(e) => e,
        Err(e) => {
            response::log_exception(py, &core, crate::codes::APP_EXCEPTION, "cannot create wsgi.errors", &e);
            return (Outcome::Failed, core.finish().map(|s| s.io));
        }
    };
    let outcome = match environ::build(py, call.cgi, &call.info, &core, &stream, track.thread()) {
        Ok(environ) => {
            errors::set_current(errors.clone_ref(py));
            let app = track.started(py, app, &environ, &core);
            let o = response::run(py, &app, &environ, &core, call.script);
            // Before the request's log and I/O end: subscribers' output goes to its log.
            track.finished(py, &core);
            errors::clear_current();
            o
        }
        Err(e) => {
            response::log_exception(py, &core, crate::codes::APP_EXCEPTION, "cannot build the WSGI environ", &e);
            Outcome::Failed
        }
    };
    errors::end_request_stream(errors.get());
    // The caller ends the response (RequestIo::finish) after leaving Python, so that a request
    // takes the GIL once.
    (outcome, core.finish().map(|s| s.io))
}
