//! The interpreter pool: one Python interpreter per application group in this process.
//!
//! An application group is a name (mod_wsgi's `WSGIApplicationGroup`); the empty name is the
//! main interpreter (`%{GLOBAL}`), every other name gets a sub-interpreter made with
//! `Py_NewInterpreter` the first time a request (or `WSGIImportScript`) needs it, kept until the
//! process exits. Each thread keeps one lasting thread state per interpreter it has entered, so
//! `threading.local` data survives between requests in every group.
//!
//! # How a thread enters a group
//!
//! pyo3 does not know about sub-interpreters: its `Python::attach` takes the GIL through
//! `PyGILState_Ensure`, which always picks the thread's *main-interpreter* thread state (and
//! deadlocks if a sub-interpreter's state already holds the GIL on this thread). So [`enter`]
//! first attaches the normal way, in the main interpreter, and then, still holding the GIL, swaps
//! the current thread state for this thread's state in the group's interpreter
//! (`PyThreadState_Swap`), and swaps back before the attachment ends. While inside, pyo3 counts
//! the thread as attached, so every nested `Python::attach` is a no-op and no `PyGILState_*`
//! call is made by our code; `Python::detach` (`PyEval_SaveThread`/`RestoreThread`) saves and
//! restores whatever thread state is current, so the GIL is still released around Apache I/O.
//! Objects dropped inside are released at once, in the right interpreter (pyo3 defers a decref
//! only when the thread is not attached).
//!
//! # What is shared between interpreters, and why that is sound on Python 3.11
//!
//! On 3.11 every interpreter of a process shares one GIL and one object allocator (obmalloc is
//! per process until 3.12), so an object is only *wrong* in another interpreter if it carries
//! that interpreter's state (a module, a function's globals, an import-time cache), or if the
//! interpreter that owns it can go away. Nothing here ends an interpreter before the process
//! exits. What this module shares, each for the reason given:
//!
//! - The Rust-defined types (`wsgi.input`'s, `wsgi.errors`', `start_response`'s, the
//!   `wsgi.file_wrapper` class, `sys.stdout`'s): pyo3 creates each type object once per process.
//!   [`crate::wsgi::init_types`] creates all of them in the main interpreter before any
//!   sub-interpreter exists, so they are owned by the interpreter that lives longest. Their
//!   methods are Rust code (no Python globals); the type dicts hold only method descriptors and
//!   strings. (C extensions like mod_wsgi's own share static types the same way.)
//! - Immutable values: the environ template made in the main interpreter (str, int, bool, tuple
//!   values and the file_wrapper type; every request gets its own copy of the dict, made in the
//!   request's interpreter) and the interned key strings cached per thread and by `intern!`.
//!   A str is never mutated and is kept alive by the cache that holds it.
//! - Never shared: modules, functions, script modules (loaded per group, see
//!   [`crate::python::scripts`]), `sys` settings, the `mod_wsgi` module (one per interpreter,
//!   with that interpreter's `application_group`, event subscribers and `active_requests`;
//!   `crate::wsgi::events` finds it through a registry keyed by interpreter), the `apache`
//!   module, the per-request `request_data` dicts, `sys.stdout`/`sys.stderr` objects (one pair
//!   per interpreter), exceptions and tracebacks (formatted by the current interpreter's
//!   `traceback` module).
//!
//! The integration tests check isolation from the outside: two mounts of one script keep
//! separate module state, `sys.modules` differs, `%{GLOBAL}` is the main interpreter.

use std::cell::RefCell;
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;

use super::interp;

/// An interpreter of this process. Only CPython dereferences it, with the GIL held.
#[derive(Clone, Copy, PartialEq, Eq)]
struct InterpPtr(*mut ffi::PyInterpreterState);

// SAFETY: the pointer is an opaque handle passed back to CPython only while holding the GIL;
// sub-interpreters are never ended while the process runs requests, so it stays valid.
unsafe impl Send for InterpPtr {}

/// Sub-interpreters by application group name, in creation order.
static SUBS: Mutex<Vec<(String, InterpPtr)>> = Mutex::new(Vec::new());

/// Serialises creating interpreters (waited for with the GIL released, held while Python runs
/// the new interpreter's set-up).
static CREATING: super::PyExclusive = super::PyExclusive::new();

thread_local! {
    /// This thread's lasting thread state in each sub-interpreter it has entered.
    static STATES: RefCell<Vec<(InterpPtr, *mut ffi::PyThreadState)>> = const { RefCell::new(Vec::new()) };
    /// How long the last [`enter`] on this thread waited to get the GIL (measured only while
    /// requests are tracked, see `crate::wsgi::events`).
    static ENTRY_WAIT: std::cell::Cell<Option<std::time::Duration>> = const { std::cell::Cell::new(None) };
}

/// How long the current [`enter`] on this thread waited for the GIL, if it was measured (taken:
/// a second call answers `None`).
pub fn take_entry_wait() -> Option<std::time::Duration> {
    ENTRY_WAIT.with(|w| w.take())
}

fn lookup(name: &str) -> Option<InterpPtr> {
    SUBS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(n, _)| n == name).map(|(_, p)| *p)
}

/// An identifier of the interpreter whose thread state is current on this thread (for caches
/// that must keep each interpreter's objects apart). Call with the GIL held.
pub fn current_interpreter_id(_py: Python<'_>) -> usize {
    // SAFETY: the `Python` token proves this thread holds the GIL, so a thread state is current
    // and its interpreter is alive; only the pointer value is used.
    unsafe { ffi::PyInterpreterState_Get() as usize }
}

/// The names of the sub-interpreters created so far in this process.
pub fn names() -> Vec<String> {
    SUBS.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(n, _)| n.clone()).collect()
}

/// Swaps the current thread state back when dropped (also when unwinding).
struct SwapBack(*mut ffi::PyThreadState);

impl Drop for SwapBack {
    fn drop(&mut self) {
        // SAFETY: the GIL is held (we are inside `Python::attach`, and every `detach` inside has
        // restored its state); self.0 is this thread's main-interpreter state saved on entry.
        unsafe { ffi::PyThreadState_Swap(self.0) };
    }
}

/// Runs `f` with the GIL held in application group `group`'s interpreter (`""`: the main one),
/// creating the interpreter on first use. Python must be initialised in this process.
///
/// `f` must not let Python objects escape: whatever it returns outlives the switch back.
/// Fails (with the reason) only if the group's interpreter cannot be created; the next call
/// tries again.
pub fn enter<R>(group: &str, f: impl FnOnce(Python<'_>) -> R) -> Result<R, String> {
    interp::ensure_thread_state();
    // The wait for the GIL is part of a tracked request's gil_wait_time.
    let asked = crate::wsgi::events::tracking().then(std::time::Instant::now);
    let f = move |py: Python<'_>| {
        ENTRY_WAIT.with(|w| w.set(asked.map(|t| t.elapsed())));
        f(py)
    };
    if !group.is_empty() {
        if let Some(target) = lookup(group) {
            let ts = this_threads_state(target);
            if ts.is_null() {
                return Err(format!("cannot create a thread state in interpreter '{group}'"));
            }
            return Ok(enter_with(ts, f));
        }
    }
    Python::attach(|py| {
        if group.is_empty() {
            return Ok(f(py));
        }
        let target = match lookup(group) {
            Some(t) => t,
            None => create(py, group)?,
        };
        let state = this_threads_state(target);
        if state.is_null() {
            return Err(format!("cannot create a thread state in interpreter '{group}'"));
        }
        // SAFETY: the GIL is held by this thread with its main-interpreter state current;
        // `state` belongs to this thread. SwapBack restores the main state before
        // `Python::attach` releases the GIL with it.
        let _back = SwapBack(unsafe { ffi::PyThreadState_Swap(state) });
        Ok(f(py))
    })
}

/// This thread's lasting state in interpreter `target`, made on first use (null if CPython
/// could not make one). Needs no GIL.
fn this_threads_state(target: InterpPtr) -> *mut ffi::PyThreadState {
    STATES.with(|s| {
        let mut s = s.borrow_mut();
        if let Some((_, ts)) = s.iter().find(|(i, _)| *i == target) {
            return *ts;
        }
        // SAFETY: the interpreter is alive (never ended while serving); PyThreadState_New needs
        // no GIL (CPython's documentation; it takes the runtime's own lock to link the state).
        // The state is kept for the life of this thread, never used by another.
        let ts = unsafe { ffi::PyThreadState_New(target.0) };
        if !ts.is_null() {
            s.push((target, ts));
        }
        ts
    })
}

/// Leaves a group entered by [`enter_with`]: its state current again, then the GIL released
/// with it saved (also when unwinding).
struct Leave(*mut ffi::PyThreadState);

impl Drop for Leave {
    fn drop(&mut self) {
        // SAFETY: the GIL is held by this thread (pyo3's attachment has ended, leaving the GIL
        // held because it found it held); self.0 is this thread's state in the group.
        unsafe {
            ffi::PyThreadState_Swap(self.0);
            ffi::PyEval_SaveThread();
        }
    }
}

/// Runs `f` in the interpreter of this thread's state `ts`, waiting for the GIL *as a thread
/// of that interpreter*. On 3.11 a thread that waits for the GIL asks the holder to drop it
/// through the waiter's own interpreter, which a thread running bytecode in another interpreter
/// never looks at: a request waiting as a main-interpreter thread would starve behind a
/// CPU-bound request of the group until it blocks. So: take the GIL with `ts`, switch to the
/// thread's main state so that pyo3's attachment finds the GIL already held (PyGILState_Ensure
/// then only counts), and switch to `ts` inside.
fn enter_with<R>(ts: *mut ffi::PyThreadState, f: impl FnOnce(Python<'_>) -> R) -> R {
    // SAFETY: this thread holds no GIL (callers are outside Python); ts is this thread's
    // lasting state in a live interpreter, so PyEval_RestoreThread may take the GIL with it.
    // The main state is this thread's (made by ensure_thread_state); swapping with the GIL held
    // is allowed. Leave undoes both on every path.
    let main = unsafe {
        ffi::PyEval_RestoreThread(ts);
        ffi::PyGILState_GetThisThreadState()
    };
    let _leave = Leave(ts);
    // SAFETY: as above.
    unsafe { ffi::PyThreadState_Swap(main) };
    Python::attach(|py| {
        // SAFETY: the GIL is held with `main` current; SwapBack restores `main` before pyo3's
        // attachment ends (PyGILState_Release requires it to be current).
        let _back = SwapBack(unsafe { ffi::PyThreadState_Swap(ts) });
        f(py)
    })
}

/// Creates the sub-interpreter for `name` (unless another thread just did). Called with the GIL
/// held and this thread's main-interpreter state current; returns with the same state current.
fn create(py: Python<'_>, name: &str) -> Result<InterpPtr, String> {
    let _guard = CREATING.acquire(py);
    if let Some(t) = lookup(name) {
        return Ok(t);
    }
    tracing::info!(target: "wsgi", "Create interpreter '{name}' (pid {}).", std::process::id());
    // SAFETY: the GIL is held with this thread's main-interpreter state current, as
    // Py_NewInterpreter requires. It returns with the new interpreter's first thread state
    // current (bound to this thread), or NULL with the previous state restored.
    let (main_state, ts) = unsafe {
        let main_state = ffi::PyThreadState_Get();
        (main_state, ffi::Py_NewInterpreter())
    };
    if ts.is_null() {
        let why = PyErr::take(py).map(|e| e.to_string()).unwrap_or_else(|| "Py_NewInterpreter failed".into());
        return Err(format!("{}: cannot create the Python interpreter for application group '{name}': {why}", crate::codes::INTERPRETER_FAILED));
    }
    let _back = SwapBack(main_state);
    // SAFETY: ts is the valid, current thread state just created.
    let target = InterpPtr(unsafe { ffi::PyThreadState_GetInterpreter(ts) });
    STATES.with(|s| s.borrow_mut().push((target, ts)));
    if let Err(e) = interp::setup_interpreter(py, name) {
        tracing::error!(target: "wsgi", "{}: setting up interpreter '{name}' failed: {e}", crate::codes::INTERPRETER_FAILED);
    }
    SUBS.lock().unwrap_or_else(|e| e.into_inner()).push((name.to_string(), target));
    Ok(target)
}

/// Runs `f` once in every interpreter of this process: the sub-interpreters (newest first), then
/// the main one. For process exit (`atexit` functions).
pub fn for_each_at_exit(mut f: impl FnMut(Python<'_>, &str)) {
    let names = names();
    for name in names.iter().rev() {
        let _ = enter(name, |py| f(py, name));
    }
    let _ = enter("", |py| f(py, ""));
}

/// The cause and fix for errors that come from an extension module that cannot live in a
/// sub-interpreter, if `message` looks like one (raised at import, in any group but `%{GLOBAL}`).
pub fn subinterpreter_hint(group: &str, message: &str) -> Option<String> {
    if group.is_empty() {
        return None;
    }
    let m = message.to_ascii_lowercase();
    const SIGNS: [&str; 7] = [
        "subinterpreter",
        "sub-interpreter",
        "interpreter change detected",
        "one interpreter per process",
        "once per interpreter process",
        "does not support loading in",
        "single-phase init",
    ];
    SIGNS.iter().any(|s| m.contains(s)).then(|| {
        format!(
            "{}: an extension module refused to load in the sub-interpreter of application group '{group}'; C extensions such as numpy, pandas or pyo3-built modules often work only in the main interpreter: add 'WSGIApplicationGroup %{{GLOBAL}}' (or application-group=%{{GLOBAL}} on the WSGIScriptAlias) for this application",
            crate::codes::SUBINTERPRETER_UNSUPPORTED
        )
    })
}

/// The line logged when a request stuck in a sub-interpreter is found by a timeout.
pub fn stuck_hint(group: &str, timeout: &str) -> String {
    format!(
        "{}: the stuck request ran in the sub-interpreter of application group '{group}'; a C extension using the simplified GIL API (PyGILState_Ensure: numpy, pandas, some database drivers) hangs there for ever; if the application uses one, add 'WSGIApplicationGroup %{{GLOBAL}}' (found by {timeout})",
        crate::codes::SUBINTERPRETER_UNSUPPORTED
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_fix_only_for_subinterpreter_failures() {
        let h = subinterpreter_hint("site|/a", "ImportError: Interpreter change detected - this module can only be loaded into one interpreter per process.").unwrap();
        assert!(h.contains("WSGIApplicationGroup %{GLOBAL}") && h.contains("'site|/a'"), "{h}");
        assert!(subinterpreter_hint("x", "ImportError: PyO3 modules do not yet support subinterpreters").is_some());
        assert!(subinterpreter_hint("x", "ImportError: PyO3 modules may only be initialized once per interpreter process").is_some());
        assert!(subinterpreter_hint("x", "ModuleNotFoundError: No module named 'numpy'").is_none());
        assert!(subinterpreter_hint("", "does not support subinterpreters").is_none(), "the main interpreter needs no hint");
        let s = stuck_hint("g", "request-timeout");
        assert!(s.contains("%{GLOBAL}") && s.contains("request-timeout"), "{s}");
    }
}
