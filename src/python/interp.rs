//! Interpreter life cycle: initialised once per process (an Apache child in embedded mode, a
//! daemon process after fork), never in the Apache parent.

use std::ffi::CString;
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::wsgi::environ::{self, ProcessInfo};
use crate::wsgi::errors::ProcessLog;

/// Settings for [`initialize`].
#[derive(Debug, Default, Clone)]
pub struct InitOptions {
    /// `WSGIPythonHome` / `python-home=`: a virtualenv or installation prefix.
    pub python_home: Option<String>,
    /// `WSGIPythonPath` / `python-path=`: directories added with `site.addsitedir`.
    pub python_path: Vec<String>,
    /// Facts for the environ template.
    pub process: Option<ProcessInfo>,
    /// `WSGIRestrictStdin Off`: leave `sys.stdin` usable (mod_wsgi restricts it by default).
    pub allow_stdin: bool,
    /// `WSGIRestrictStdout On`: `sys.stdout` raises instead of logging.
    pub restrict_stdout: bool,
    /// Optimisation, bytecode, warnings, hash seed, switch interval, egg cache, signals.
    pub python: crate::config::PythonSettings,
}

static STATE: OnceLock<Result<(), String>> = OnceLock::new();

/// The Python executable the module was built against (Debian's /usr/bin/python3.11).
const PYTHON_EXECUTABLE: &str = env!("WSGI_PYTHON_EXECUTABLE");

/// The version of the linked libpython, e.g. `"3.11"`. Safe before initialisation.
pub fn python_version() -> String {
    // SAFETY: Py_GetVersion returns a pointer to a static NUL-terminated string and may be called
    // before Py_Initialize.
    let v = unsafe { std::ffi::CStr::from_ptr(ffi::Py_GetVersion()) };
    let v = v.to_string_lossy();
    let num = v.split_whitespace().next().unwrap_or("");
    num.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Whether Python was initialised successfully in this process; the error otherwise.
pub fn status() -> Option<&'static Result<(), String>> {
    STATE.get()
}

fn check(status: ffi::PyStatus, what: &str) -> Result<(), String> {
    // SAFETY: PyStatus_Exception only reads the struct passed by value.
    if unsafe { ffi::PyStatus_Exception(status) } != 0 {
        let msg = if status.err_msg.is_null() {
            "unknown error".to_string()
        } else {
            // SAFETY: err_msg is a static NUL-terminated C string set by CPython.
            unsafe { std::ffi::CStr::from_ptr(status.err_msg) }.to_string_lossy().into_owned()
        };
        return Err(format!("{what}: {msg}"));
    }
    Ok(())
}

/// Initialises Python in this process (once; later calls return the first result).
///
/// Signal handlers are not installed (Apache owns signals), `sys.argv` is `['mod_wsgi']`,
/// `threading` is imported on this thread, `sys.stdout`/`sys.stderr` go to the error log, and the
/// GIL is released before returning.
pub fn initialize(opts: &InitOptions) -> &'static Result<(), String> {
    STATE.get_or_init(|| init_inner(opts))
}

fn init_inner(opts: &InitOptions) -> Result<(), String> {
    if let Some(eggs) = &opts.python.eggs {
        if let Err(e) = crate::sys::process::set_env("PYTHON_EGG_CACHE", eggs) {
            tracing::warn!(target: "wsgi", "cannot set PYTHON_EGG_CACHE to '{eggs}': {e}");
        }
    }
    // SAFETY: called once per process, before any other Python API, on one thread. The PyConfig
    // lives on this stack frame until PyConfig_Clear.
    unsafe {
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        config.configure_c_stdio = 0;
        config.buffered_stdio = 0;
        config.optimization_level = i32::from(opts.python.optimize);
        if opts.python.dont_write_bytecode {
            config.write_bytecode = 0;
        }
        if let Some(seed) = opts.python.hash_seed {
            config.use_hash_seed = 1;
            config.hash_seed = libc::c_ulong::from(seed);
        }
        let set_str = |config: *mut ffi::PyConfig, field: *mut *mut libc::wchar_t, value: &str| -> Result<(), String> {
            let c = CString::new(value).map_err(|_| format!("{value:?} contains a NUL byte"))?;
            check(ffi::PyConfig_SetBytesString(config, field, c.as_ptr()), "cannot set Python configuration")
        };
        let r = (|| {
            let cfg_ptr = &raw mut config;
            match &opts.python_home {
                // A virtualenv has no standard library of its own: start "its" python, so that
                // Python reads pyvenv.cfg and finds the base installation (as mod_wsgi does).
                Some(home) if std::path::Path::new(home).join("pyvenv.cfg").exists() => {
                    let exe = format!("{}/bin/python", home.trim_end_matches('/'));
                    set_str(cfg_ptr, &raw mut (*cfg_ptr).program_name, &exe)?;
                    set_str(cfg_ptr, &raw mut (*cfg_ptr).executable, &exe)?;
                }
                Some(home) => {
                    set_str(cfg_ptr, &raw mut (*cfg_ptr).program_name, PYTHON_EXECUTABLE)?;
                    set_str(cfg_ptr, &raw mut (*cfg_ptr).home, home)?;
                }
                // The interpreter this module was built against: sys.prefix is its prefix.
                None => set_str(cfg_ptr, &raw mut (*cfg_ptr).program_name, PYTHON_EXECUTABLE)?,
            }
            // As `python -W`: sys.warnoptions in every interpreter, applied to its filters.
            for w in &opts.python.warnings {
                let c = CString::new(w.as_str()).map_err(|_| format!("{w:?} contains a NUL byte"))?;
                let wide = ffi::Py_DecodeLocale(c.as_ptr(), std::ptr::null_mut());
                if wide.is_null() {
                    return Err(format!("cannot decode the warning filter {w:?}"));
                }
                let status = ffi::PyWideStringList_Append(&raw mut (*cfg_ptr).warnoptions, wide);
                ffi::PyMem_RawFree(wide.cast());
                check(status, "cannot set a warning filter")?;
            }
            let argv0 = CString::new("mod_wsgi").unwrap();
            let mut argv = [argv0.as_ptr()];
            check(ffi::PyConfig_SetBytesArgv(cfg_ptr, 1, argv.as_mut_ptr()), "cannot set sys.argv")?;
            check(ffi::Py_InitializeFromConfig(cfg_ptr), "Py_InitializeFromConfig failed")
        })();
        ffi::PyConfig_Clear(&mut config);
        r?;
    }
    let _ = OPTIONS.set(opts.clone());
    let setup = Python::attach(|py| -> PyResult<()> {
        // Every Rust-defined type is made here, in the main interpreter, before any
        // sub-interpreter exists (see `pool`: they are shared by all interpreters).
        crate::wsgi::init_types(py)?;
        crate::wsgi::metrics::mark_process_start();
        if let Some(p) = &opts.process {
            environ::init_template(py, p)?;
            crate::wsgi::metrics::set_process_kind(!p.process_group.is_empty(), p.threads_per_process);
        }
        let sys = py.import("sys")?;
        if let Some(interval) = opts.python.switch_interval {
            sys.call_method1("setswitchinterval", (interval,))?;
        }
        setup_interpreter(py, "")
    });
    // SAFETY: Python is initialised and this thread holds the GIL (Py_InitializeFromConfig leaves
    // it held); releasing it lets worker threads attach. The thread state is kept for this thread.
    unsafe {
        ffi::PyEval_SaveThread();
    }
    setup.map_err(|e| format!("Python started but its setup failed: {e}"))
}

/// The options Python was initialised with in this process (for later interpreters).
static OPTIONS: OnceLock<InitOptions> = OnceLock::new();

/// Prepares the current interpreter (the main one, `group == ""`, or a new sub-interpreter):
/// `threading` imported, `sys.stdout`/`sys.stderr` into the error log, `WSGIPythonPath` /
/// `python-path=` directories in front of `sys.path`, and an importable `mod_wsgi` module.
pub fn setup_interpreter(py: Python<'_>, group: &str) -> PyResult<()> {
    let opts = OPTIONS.get().cloned().unwrap_or_default();
    py.import("threading")?;
    let sys = py.import("sys")?;
    use crate::wsgi::errors::{Restricted, text_wrapper};
    let stdout = if opts.restrict_stdout {
        Py::new(py, Restricted::new("sys.stdout"))?.into_any().into_bound(py)
    } else {
        text_wrapper(py, Py::new(py, ProcessLog::new("stdout"))?.bind(py).as_any())?
    };
    sys.setattr("stdout", stdout)?;
    sys.setattr("stderr", text_wrapper(py, Py::new(py, ProcessLog::new("stderr"))?.bind(py).as_any())?)?;
    if !opts.allow_stdin {
        sys.setattr("stdin", Py::new(py, Restricted::new("sys.stdin"))?)?;
    }
    if !opts.python_path.is_empty() {
        let site = py.import("site")?;
        let path = sys.getattr("path")?;
        let before: Vec<String> = path.extract()?;
        for dir in &opts.python_path {
            site.call_method1("addsitedir", (dir,))?;
        }
        // Like mod_wsgi: the added directories go to the front of sys.path.
        let after: Vec<String> = path.extract()?;
        let added: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
        let mut reordered: Vec<&String> = added.clone();
        reordered.extend(before.iter());
        sys.setattr("path", reordered)?;
    }
    if opts.python.restrict_signal {
        restrict_signal(py)?;
    }
    let m = pyo3::types::PyModule::new(py, "mod_wsgi")?;
    m.setattr("version", environ::VERSION)?;
    m.setattr("application_group", group)?;
    let info = opts.process.as_ref();
    m.setattr("process_group", info.map_or("", |p| p.process_group.as_str()))?;
    m.setattr("maximum_processes", info.map_or(1, |p| p.maximum_processes))?;
    m.setattr("threads_per_process", info.map_or(1, |p| p.threads_per_process))?;
    m.setattr("FileWrapper", py.get_type::<crate::wsgi::file_wrapper::FileWrapper>())?;
    // Raised by an application (or injected) to give up on a request: the client gets 504. A
    // class per interpreter, made by that interpreter.
    py.run(
        c"class RequestTimeout(SystemExit):\n    'The request ran out of time; the client gets 504 Gateway Timeout.'\n",
        Some(&m.dict()),
        None,
    )?;
    m.getattr("RequestTimeout")?.setattr("__module__", "mod_wsgi")?;
    crate::wsgi::events::install(py, &m)?;
    sys.getattr("modules")?.set_item("mod_wsgi", m)?;
    setup_apache_module(py, info)
}

/// The `apache` module: Apache's `version`, `mpm_name`, `maximum_processes` and
/// `threads_per_process`. As mod_wsgi does, an importable module of that name is used (and
/// given these attributes) if there is one.
fn setup_apache_module(py: Python<'_>, info: Option<&ProcessInfo>) -> PyResult<()> {
    let m = match py.import("apache") {
        Ok(m) => m,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyModuleNotFoundError>(py) => {
            let m = pyo3::types::PyModule::new(py, "apache")?;
            py.import("sys")?.getattr("modules")?.set_item("apache", &m)?;
            m
        }
        Err(e) => {
            tracing::warn!(target: "wsgi", "the importable 'apache' module failed to import ({e}); it was left alone");
            return Ok(());
        }
    };
    let mpm = info.map(|p| p.mpm.clone()).unwrap_or_default();
    m.setattr("version", info.map_or((0, 0, 0), |p| p.apache_version))?;
    m.setattr("mpm_name", mpm.name)?;
    m.setattr("maximum_processes", mpm.maximum_processes.max(1))?;
    m.setattr("threads_per_process", mpm.threads_per_process.max(1))?;
    Ok(())
}

/// WSGIRestrictSignal On: `signal.signal()` leaves the handler as it is (Apache owns this
/// process's signals), logs one line naming the signal, and returns the current handler.
///
/// The C module `_signal` is patched (`signal.signal` calls it at each call), and only once the
/// application imports it: importing it here would load it into every process and interpreter
/// (its import also installs Python's SIGINT handler in the main interpreter).
fn restrict_signal(py: Python<'_>) -> PyResult<()> {
    let code = std::ffi::CString::new(format!(
        r#"import sys as _sys
def _restrict(mod):
    def signal(signalnum, handler):
        _sys.stderr.write('{code}: callback registration for signal %d ignored: Apache owns the signals of this process (WSGIRestrictSignal Off allows it)\n' % signalnum)
        _sys.stderr.flush()
        return mod.getsignal(signalnum)
    signal.__doc__ = mod.signal.__doc__
    mod.signal = signal
if '_signal' in _sys.modules:
    _restrict(_sys.modules['_signal'])
else:
    class _RestrictSignalFinder:
        'Patches _signal.signal when the application first imports signal (WSGIRestrictSignal).'
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name != '_signal':
                return None
            import importlib.machinery
            spec = importlib.machinery.BuiltinImporter.find_spec(name)
            if spec is None:
                return None
            builtin = spec.loader
            class _Loader:
                @staticmethod
                def create_module(spec):
                    return builtin.create_module(spec)
                @staticmethod
                def exec_module(module):
                    builtin.exec_module(module)
                    _restrict(module)
            spec.loader = _Loader
            return spec
    _sys.meta_path.insert(0, _RestrictSignalFinder)
"#,
        code = crate::codes::SIGNAL_IGNORED
    ))
    .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let scope = pyo3::types::PyDict::new(py);
    py.run(&code, Some(&scope), None)
}

/// As a process shuts down: publishes `process_stopping` (with `shutdown_reason`, mod_wsgi's
/// names: `""` in an Apache child) to the subscribers of every interpreter, then runs the
/// functions registered with `atexit` in every interpreter (sub-interpreters first, then the
/// main one), as mod_wsgi does; errors are logged, never raised. Interpreters are not torn down:
/// the process exits next.
pub fn run_exit_hooks(shutdown_reason: &str) {
    if !matches!(status(), Some(Ok(()))) {
        return;
    }
    if crate::wsgi::events::stopping_subscribed() {
        super::pool::for_each_at_exit(|py, _| crate::wsgi::events::process_stopping(py, shutdown_reason));
    }
    super::pool::for_each_at_exit(|py, group| {
        if let Err(e) = py.import("atexit").and_then(|m| m.call_method0("_run_exitfuncs")) {
            tracing::error!(target: "wsgi", "atexit functions of application group '{group}' raised: {e}");
        }
    });
}

thread_local! {
    static HAS_TSTATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Gives the calling thread one lasting Python thread state, so `threading.local` data survives
/// between requests. `Python::attach` then reuses it instead of creating and destroying one per
/// request. Call before `Python::attach` on server-owned threads.
pub fn ensure_thread_state() {
    HAS_TSTATE.with(|has| {
        if !has.get() {
            // Made without taking the GIL: waiting for it here as a main-interpreter thread
            // would starve behind a CPU-bound request in a sub-interpreter (see `pool`).
            // SAFETY: Python is initialised (callers check `status()`); PyThreadState_New needs
            // no GIL. As this thread's first state it becomes the thread's PyGILState state,
            // with a gilstate counter of 1, so PyGILState_Ensure/Release (pyo3's attach) reuse
            // it and never destroy it. If the thread already had one (made by someone else),
            // fall back to Ensure/SaveThread, which finds it.
            unsafe {
                if ffi::PyGILState_GetThisThreadState().is_null() {
                    ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
                }
                if ffi::PyGILState_GetThisThreadState().is_null() {
                    ffi::PyGILState_Ensure();
                    ffi::PyEval_SaveThread();
                }
            }
            has.set(true);
        }
    });
}
