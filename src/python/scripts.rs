//! Loading WSGI script files.
//!
//! Each script file is executed from its path as a module of its own (named from a hash of the
//! path, registered in `sys.modules`, never imported by name nor put on `sys.path`), once per
//! application group (interpreter) of the process, and executed afresh when its modification time
//! changes (WSGIScriptReloading On). Callers run these functions inside the group's interpreter
//! (`crate::python::pool::enter`) and pass the same group name: a module is only ever used in the
//! interpreter that made it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyModule, PyString};

use crate::codes;

struct Loaded {
    module: Py<PyModule>,
    mtime: i64,
}

/// Scripts loaded in this process, by application group, then path (two levels, so a lookup
/// borrows both names instead of building a key).
static LOADED: Mutex<Option<HashMap<String, HashMap<String, Loaded>>>> = Mutex::new(None);
/// Serialises executing scripts so that concurrent first requests run a script once (waited for
/// with the GIL released, held while Python runs the script).
static LOADING: super::PyExclusive = super::PyExclusive::new();

/// Why no application callable could be had.
#[derive(Debug)]
pub enum LoadError {
    /// The script raised while being executed: headline and traceback lines, ready to log.
    Failed(Vec<String>),
    /// The script has no callable of that name.
    NoCallable(String),
}

/// The module name a script path is loaded under (`_mod_wsgi_` and a hash of the path).
pub fn module_name(path: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    format!("_mod_wsgi_{:016x}", h.finish())
}

fn loaded<'a>(all: &'a Option<HashMap<String, HashMap<String, Loaded>>>, group: &str, path: &str) -> Option<&'a Loaded> {
    all.as_ref()?.get(group)?.get(path)
}

fn cached(py: Python<'_>, group: &str, path: &str, mtime: i64, reloading: bool) -> Option<Py<PyModule>> {
    let module = {
        let g = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        let entry = loaded(&g, group, path)?;
        if reloading && entry.mtime != mtime {
            return None;
        }
        entry.module.clone_ref(py)
    };
    // Outside the lock: the module's own say may run Python code.
    if reloading && module_wants_reload(py, module.bind(py), path, mtime) {
        return None;
    }
    Some(module)
}

/// Whether a loaded, unchanged script must be executed again anyway, as mod_wsgi decides it: its
/// `__mtime__` is gone or differs from the file's, or its `reload_required(resource)` function
/// returns true. A `reload_required` that raises is logged and counts as "no reload".
fn module_wants_reload(py: Python<'_>, module: &Bound<'_, PyModule>, path: &str, mtime: i64) -> bool {
    let dict = module.dict();
    let stamped = dict.get_item(pyo3::intern!(py, "__mtime__")).ok().flatten().and_then(|v| v.extract::<i64>().ok());
    if stamped != Some(mtime) {
        return true;
    }
    let Some(hook) = dict.get_item(pyo3::intern!(py, "reload_required")).ok().flatten() else {
        return false;
    };
    match hook.call1((path,)).and_then(|v| v.is_truthy()) {
        Ok(wanted) => wanted,
        Err(e) => {
            tracing::error!(target: "wsgi", "{}: reload_required() in WSGI script '{path}' raised; the script is not reloaded.", codes::SCRIPT_LOAD_FAILED);
            for l in crate::wsgi::response::format_exception(py, &e) {
                tracing::error!(target: "wsgi", "{}: {l}", codes::SCRIPT_LOAD_FAILED);
            }
            false
        }
    }
}

/// Executes the script file into a fresh module, stamped with the file's modification time
/// (`__mtime__`, as mod_wsgi does, after the script ran).
fn execute(py: Python<'_>, path: &str, mtime: i64) -> PyResult<Py<PyModule>> {
    let name = module_name(path);
    let source = std::fs::read(path).map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot read '{path}': {e}")))?;
    let module = PyModule::new(py, &name)?;
    module.setattr("__file__", path)?;
    let builtins = py.import("builtins")?;
    let sys_modules = py.import("sys")?.getattr("modules")?;
    let code = builtins.call_method1("compile", (PyBytes::new(py, &source), path, "exec", 0, true))?;
    sys_modules.set_item(&name, &module)?;
    let globals: Bound<'_, PyDict> = module.dict();
    if let Err(e) = builtins.call_method1("exec", (code, &globals)) {
        let _ = sys_modules.del_item(&name);
        return Err(e);
    }
    module.setattr("__mtime__", mtime)?;
    Ok(module.unbind())
}

/// A file's modification time in microseconds, as Apache reports it (`apr_finfo_t.mtime`).
pub fn file_mtime(path: &str) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(m.mtime() * 1_000_000 + m.mtime_nsec() / 1_000)
}

/// WSGIImportScript: loads a script into application group `group` at process start, before any
/// request. Failures are logged (the script is tried again by the first request that needs it).
pub fn preload(py: Python<'_>, group: &str, path: &str) {
    let Some(mtime) = file_mtime(path) else {
        tracing::error!(target: "wsgi", "{}: WSGIImportScript '{path}' cannot be read; check the path and that the server's user can read it", codes::IMPORT_SCRIPT_UNREADABLE);
        return;
    };
    match application(py, group, path, mtime, true, "\0") {
        Ok(_) | Err(LoadError::NoCallable(_)) => {}
        Err(LoadError::Failed(lines)) => {
            for l in lines {
                tracing::error!(target: "wsgi", "{l}");
            }
        }
    }
}

/// The mtime a script was loaded with in application group `group`, if it was loaded there.
pub fn loaded_mtime(group: &str, path: &str) -> Option<i64> {
    loaded(&LOADED.lock().unwrap_or_else(|e| e.into_inner()), group, path).map(|l| l.mtime)
}

/// Returns the script's callable `callable`, loading or reloading the script as needed.
///
/// `mtime` is the file's modification time as the server saw it; `reloading` is
/// WSGIScriptReloading.
pub fn application<'py>(
    py: Python<'py>,
    group: &str,
    path: &str,
    mtime: i64,
    reloading: bool,
    callable: &str,
) -> Result<Bound<'py, PyAny>, LoadError> {
    let module = match cached(py, group, path, mtime, reloading) {
        Some(m) => m,
        None => {
            // Wait for the load lock without the GIL, so a thread that holds it can progress.
            let _guard = LOADING.acquire(py);
            match cached(py, group, path, mtime, reloading) {
                Some(m) => m,
                None => {
                    let reload = loaded(&LOADED.lock().unwrap_or_else(|e| e.into_inner()), group, path).is_some();
                    let verb = if reload { "Reloading" } else { "Loading" };
                    tracing::info!(target: "wsgi", "{verb} WSGI script '{path}' into application group '{group}' (pid {}).", std::process::id());
                    match execute(py, path, mtime) {
                        Ok(m) => {
                            let old = {
                                let mut g = LOADED.lock().unwrap_or_else(|e| e.into_inner());
                                g.get_or_insert_with(HashMap::new)
                                    .entry(group.to_string())
                                    .or_default()
                                    .insert(path.to_string(), Loaded { module: m.clone_ref(py), mtime })
                            };
                            // Dropping the old module may run Python code: never under the lock.
                            drop(old);
                            m
                        }
                        Err(e) => {
                            let mut lines = vec![format!(
                                "{}: failed to execute Python script file '{path}'; the request gets 500 and the script is tried again on the next request.",
                                codes::SCRIPT_LOAD_FAILED
                            )];
                            lines.extend(
                                crate::wsgi::response::format_exception(py, &e)
                                    .into_iter()
                                    .map(|l| format!("{}: {l}", codes::SCRIPT_LOAD_FAILED)),
                            );
                            // An extension that cannot live in a sub-interpreter: say what to do.
                            if let Some(hint) = super::pool::subinterpreter_hint(group, &lines.join("\n")) {
                                lines.push(hint);
                            }
                            return Err(LoadError::Failed(lines));
                        }
                    }
                }
            }
        }
    };
    let module = module.into_bound(py);
    // From the module's dict, as mod_wsgi does (no module `__getattr__`, and no AttributeError
    // made and cleared when it is missing).
    let name = if callable == "application" { pyo3::intern!(py, "application").clone() } else { PyString::new(py, callable) };
    match module.dict().get_item(name) {
        Ok(Some(app)) if app.is_callable() => Ok(app),
        Ok(Some(_)) => Err(LoadError::NoCallable(format!(
            "{}: '{callable}' in WSGI script '{path}' is not callable",
            codes::NO_CALLABLE
        ))),
        Err(e) => Err(LoadError::NoCallable(format!(
            "{}: looking up '{callable}' in WSGI script '{path}' raised: {e}",
            codes::NO_CALLABLE
        ))),
        Ok(None) => Err(LoadError::NoCallable(format!(
            "{}: target WSGI script '{path}' does not contain WSGI application '{callable}'; define it, or name another callable with WSGICallableObject",
            codes::NO_CALLABLE
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn module_names_are_stable_and_distinct() {
        let a = super::module_name("/srv/a.wsgi");
        assert_eq!(a, super::module_name("/srv/a.wsgi"));
        assert_ne!(a, super::module_name("/srv/b.wsgi"));
        assert!(a.starts_with("_mod_wsgi_"));
    }
}
