//! The functions other than the application that a script may provide for Apache's request
//! phases, called with an environ of the request's CGI variables:
//!
//! - `check_password(environ, user, password)` and `get_realm_hash(environ, user, realm)`: the
//!   authn provider `wsgi` (WSGIAuthUserScript with `AuthBasicProvider` / `AuthDigestProvider`);
//! - `groups_for_user(environ, user)`: `Require wsgi-group NAME...` (WSGIAuthGroupScript);
//! - `allow_access(environ, host)`: host access (WSGIAccessScript);
//! - `process_group(environ)`, `application_group(environ)`, `callable_object(environ)`: which
//!   daemon group, interpreter and callable serve the request (WSGIDispatchScript).
//!
//! Callers run these inside the interpreter of the script's application group. A failure (the
//! script does not load, lacks the function, raises, or returns a value of the wrong type) comes
//! back as the lines to log; the caller answers 500.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::codes;
use crate::python::scripts::{self, LoadError};

/// The script and request a hook function is called for.
pub struct HookCall<'a> {
    /// The directive that named the script, for messages.
    pub directive: &'a str,
    pub script: &'a str,
    /// The application group (interpreter) the script is loaded into.
    pub group: &'a str,
    pub cgi: &'a [(&'a str, &'a [u8])],
    pub url_scheme: &'a str,
}

/// Log lines explaining why a hook gave no answer.
pub type Failure = Vec<String>;

impl HookCall<'_> {
    fn environ<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = super::environ::template(py)?;
        for (k, v) in self.cgi {
            d.set_item(*k, super::environ::latin1(py, v)?)?;
        }
        d.set_item("wsgi.url_scheme", self.url_scheme)?;
        d.set_item("wsgi.errors", py.import("sys")?.getattr("stderr")?)?;
        d.set_item("mod_wsgi.application_group", self.group)?;
        Ok(d)
    }

    /// The script's function `name`, loading the script as needed. `Ok(None)`: no such function.
    fn function<'py>(&self, py: Python<'py>, name: &str) -> Result<Option<Bound<'py, PyAny>>, Failure> {
        let mtime = scripts::file_mtime(self.script).ok_or_else(|| {
            vec![format!(
                "{}: {} '{}' cannot be read; check the path and that the server's user can read it",
                codes::HOOK_SCRIPT_FAILED, self.directive, self.script
            )]
        })?;
        match scripts::application(py, self.group, self.script, mtime, true, name) {
            Ok(f) => Ok(Some(f)),
            Err(LoadError::NoCallable(_)) => Ok(None),
            Err(LoadError::Failed(lines)) => Err(lines),
        }
    }

    /// Calls `name(environ, *args)`; a missing function is a failure.
    fn call<'py>(&self, py: Python<'py>, name: &str, args: &[Bound<'py, PyAny>]) -> Result<Bound<'py, PyAny>, Failure> {
        let Some(f) = self.function(py, name)? else {
            return Err(vec![format!(
                "{}: {} '{}' has no function {name}(); define it in the script",
                codes::HOOK_SCRIPT_FAILED, self.directive, self.script
            )]);
        };
        self.invoke(py, name, &f, args)
    }

    fn invoke<'py>(&self, py: Python<'py>, name: &str, f: &Bound<'py, PyAny>, args: &[Bound<'py, PyAny>]) -> Result<Bound<'py, PyAny>, Failure> {
        let environ = self.environ(py).map_err(|e| self.raised(py, name, &e))?;
        let mut all: Vec<Bound<'py, PyAny>> = vec![environ.into_any()];
        all.extend(args.iter().cloned());
        let tuple = pyo3::types::PyTuple::new(py, all).map_err(|e| self.raised(py, name, &e))?;
        f.call1(tuple).map_err(|e| self.raised(py, name, &e))
    }

    fn raised(&self, py: Python<'_>, name: &str, e: &PyErr) -> Failure {
        let mut lines = vec![format!(
            "{}: exception raised by {name}() in {} '{}'; the request gets 500",
            codes::HOOK_SCRIPT_FAILED, self.directive, self.script
        )];
        lines.extend(super::response::format_exception(py, e).into_iter().map(|l| format!("{}: {l}", codes::HOOK_SCRIPT_FAILED)));
        lines
    }

    fn wrong_type(&self, name: &str, value: &Bound<'_, PyAny>, wanted: &str) -> Failure {
        let shown = value.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<unprintable>".into());
        let shown: String = shown.chars().take(200).collect();
        vec![format!(
            "{}: {name}() in {} '{}' returned {shown}; it must return {wanted}",
            codes::HOOK_SCRIPT_FAILED, self.directive, self.script
        )]
    }

    fn verdict(&self, name: &str, value: &Bound<'_, PyAny>) -> Result<Option<bool>, Failure> {
        if value.is_none() {
            Ok(None)
        } else if let Ok(b) = value.cast::<pyo3::types::PyBool>() {
            Ok(Some(b.is_true()))
        } else {
            Err(self.wrong_type(name, value, "True, False or None"))
        }
    }
}

fn text<'py>(py: Python<'py>, b: &[u8]) -> Result<Bound<'py, PyAny>, Failure> {
    super::environ::latin1(py, b).map(|s| s.into_any()).map_err(|e| vec![e.to_string()])
}

/// `check_password(environ, user, password)`: `Some(true)` granted, `Some(false)` wrong
/// password, `None` unknown user.
pub fn check_password(py: Python<'_>, call: &HookCall<'_>, user: &[u8], password: &[u8]) -> Result<Option<bool>, Failure> {
    let v = call.call(py, "check_password", &[text(py, user)?, text(py, password)?])?;
    call.verdict("check_password", &v)
}

/// `get_realm_hash(environ, user, realm)`: the hex MD5 of `user:realm:password`, `None` for an
/// unknown user.
pub fn get_realm_hash(py: Python<'_>, call: &HookCall<'_>, user: &[u8], realm: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
    let v = call.call(py, "get_realm_hash", &[text(py, user)?, text(py, realm)?])?;
    if v.is_none() {
        return Ok(None);
    }
    bytes_of(&v).map(Some).ok_or_else(|| call.wrong_type("get_realm_hash", &v, "a string (the hex MD5 of 'user:realm:password') or None"))
}

/// `groups_for_user(environ, user)`: the user's group names.
pub fn groups_for_user(py: Python<'_>, call: &HookCall<'_>, user: &[u8]) -> Result<Vec<Vec<u8>>, Failure> {
    const WANTED: &str = "an iterable of group names (str or bytes)";
    let v = call.call(py, "groups_for_user", &[text(py, user)?])?;
    if v.is_none() {
        return Ok(Vec::new());
    }
    if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
        return Err(call.wrong_type("groups_for_user", &v, WANTED));
    }
    let iter = v.try_iter().map_err(|_| call.wrong_type("groups_for_user", &v, WANTED))?;
    let mut out = Vec::new();
    for item in iter {
        let item = item.map_err(|e| call.raised(py, "groups_for_user", &e))?;
        out.push(bytes_of(&item).ok_or_else(|| call.wrong_type("groups_for_user", &v, WANTED))?);
    }
    Ok(out)
}

/// `allow_access(environ, host)`: `Some(true)` allowed, `Some(false)` refused, `None` no opinion.
pub fn allow_access(py: Python<'_>, call: &HookCall<'_>, host: &[u8]) -> Result<Option<bool>, Failure> {
    let v = call.call(py, "allow_access", &[text(py, host)?])?;
    call.verdict("allow_access", &v)
}

/// What a dispatch script chose for one request; `None`: keep what the configuration says.
#[derive(Debug, Default)]
pub struct Dispatch {
    pub process_group: Option<String>,
    pub application_group: Option<String>,
    pub callable_object: Option<String>,
}

/// Calls whichever of `process_group`, `application_group` and `callable_object` the script
/// defines (each optional, each may return None).
pub fn dispatch(py: Python<'_>, call: &HookCall<'_>) -> Result<Dispatch, Failure> {
    let pick = |name: &str| -> Result<Option<String>, Failure> {
        let Some(f) = call.function(py, name)? else { return Ok(None) };
        let v = call.invoke(py, name, &f, &[])?;
        if v.is_none() {
            return Ok(None);
        }
        match v.cast::<PyString>() {
            Ok(s) => Ok(Some(s.to_string())),
            Err(_) => Err(call.wrong_type(name, &v, "a string or None")),
        }
    };
    Ok(Dispatch {
        process_group: pick("process_group")?,
        application_group: pick("application_group")?,
        callable_object: pick("callable_object")?,
    })
}

/// A str (latin-1) or bytes value as bytes.
fn bytes_of(v: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Some(b.as_bytes().to_vec());
    }
    let s = v.cast::<PyString>().ok()?.to_str().ok()?;
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}
