//! `start_response` and the `write()` callable it returns (PEP 3333).

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::core::Core;
use super::io::ResponseHead;
use super::validate;

#[pyclass(module = "mod_wsgi", name = "StartResponse", frozen)]
pub struct StartResponse {
    pub(crate) core: Core,
    write: Py<Write>,
}

impl StartResponse {
    pub fn new(py: Python<'_>, core: Core) -> PyResult<Self> {
        let write = Py::new(py, Write { core: core.clone() })?;
        Ok(StartResponse { core, write })
    }
}

/// Why `start_response` refused its arguments: the exception the application gets (the types
/// and messages are mod_wsgi's) and the detail for the log line if the application lets it
/// propagate.
struct Rejection {
    err: PyErr,
    detail: String,
}

fn reject_value(msg: String, detail: String) -> Rejection {
    Rejection { err: PyValueError::new_err(msg), detail }
}

fn reject_type(msg: String, detail: String) -> Rejection {
    Rejection { err: PyTypeError::new_err(msg), detail }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type().name().map(|n| n.to_string()).unwrap_or_default()
}

/// A str argument as text; any other type is a TypeError. Characters above U+00FF raise the
/// UnicodeEncodeError of encoding to latin-1 (what the value must become on the wire).
/// `what` names the value in error messages (only called when there is one).
fn latin1_text(v: &Bound<'_, PyAny>, type_message: impl FnOnce(&str) -> String, what: impl FnOnce() -> String) -> Result<String, Rejection> {
    let Ok(s) = v.cast::<PyString>() else {
        let shown = v.repr().map(|r| r.to_string()).unwrap_or_default();
        let msg = type_message(&type_name(v));
        return Err(reject_type(msg.clone(), format!("{msg}: {} {shown}", what())));
    };
    let text = s.to_string_lossy();
    if text.chars().any(|c| (c as u32) > 0xff) {
        // Let Python say it exactly as mod_wsgi does (UnicodeEncodeError with the positions).
        if let Err(e) = s.call_method1("encode", ("latin-1",)) {
            let detail = format!("{e} ({} {})", what(), s.repr().map(|r| r.to_string()).unwrap_or_default());
            return Err(Rejection { err: e, detail });
        }
    }
    Ok(text.into_owned())
}

/// Turns `(status, headers)` into a validated head, with mod_wsgi's errors.
fn parse_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> Result<ResponseHead, Rejection> {
    let status = latin1_text(status, |t| format!("start_response() argument 1 must be str, not {t}"), || "status".into())?;
    let code = validate::status(&status).map_err(|m| reject_value(m.clone(), m))?;
    let list = headers.cast::<PyList>().map_err(|_| {
        let msg = format!("start_response() argument 2 must be list, not {}", type_name(headers));
        reject_type(msg.clone(), msg)
    })?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let Ok(pair) = item.cast::<PyTuple>() else {
            let msg = format!("each header must be a 2-tuple, not {}", type_name(&item));
            let shown = item.repr().map(|r| r.to_string()).unwrap_or_default();
            return Err(reject_type(msg.clone(), format!("{msg}: {shown}")));
        };
        if pair.len() != 2 {
            let msg = format!("each header must be a 2-tuple, got length {}", pair.len());
            let shown = pair.repr().map(|r| r.to_string()).unwrap_or_default();
            return Err(reject_value(msg.clone(), format!("{msg}: {shown}")));
        }
        let (name, value) = match (pair.get_item(0), pair.get_item(1)) {
            (Ok(n), Ok(v)) => (n, v),
            (Err(e), _) | (_, Err(e)) => return Err(Rejection { detail: e.to_string(), err: e }),
        };
        let name = latin1_text(&name, |t| format!("must be str, not {t}"), || "header name".into())?;
        let value = latin1_text(&value, |t| format!("must be str, not {t}"), || format!("value of header {name:?}"))?;
        validate::header_name(&name).map_err(|m| reject_value(m.clone(), m))?;
        validate::header_value(&name, &value).map_err(|m| reject_value(m.clone(), format!("{m} (header {name:?})")))?;
        if name.eq_ignore_ascii_case("content-length") && value.trim().parse::<u64>().is_err() {
            let msg = format!("Content-Length {value:?} is not a number");
            return Err(reject_value(msg.clone(), msg));
        }
        out.push((name, value));
    }
    Ok(ResponseHead { code, status, headers: out })
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, response_headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        response_headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Write>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let head_sent = self.core.with(|s| s.response.head_sent).map_err(PyRuntimeError::new_err)?;
        if let Some(info) = exc_info {
            if !info.cast::<PyTuple>().is_ok_and(|t| t.len() == 3) {
                return Err(PyRuntimeError::new_err("start_response() argument 'exc_info' must be a 3-tuple or None"));
            }
            if head_sent {
                // PEP 3333: once the head is out, re-raise the application's exception.
                let value = info.get_item(1)?;
                let tb = info.get_item(2)?;
                let err = PyErr::from_value(value);
                if !tb.is_none() {
                    err.set_traceback(py, Some(tb.cast_into()?));
                }
                return Err(err);
            }
        } else if head_sent {
            return Err(PyRuntimeError::new_err("start_response() called more than once without exc_info"));
        }
        // Before anything was sent a later call replaces the earlier one, with or without
        // exc_info (mod_wsgi is more tolerant than PEP 3333 here).
        let head = match parse_head(status, response_headers) {
            Ok(h) => h,
            Err(r) => {
                let shown = r.err.value(py).to_string();
                let _ = self.core.with(|s| s.response.rejected = Some((shown, r.detail)));
                return Err(r.err);
            }
        };
        let cl = head.content_length();
        self.core
            .with(|s| {
                s.response.head = Some(head);
                s.response.content_length = cl;
            })
            .map_err(PyRuntimeError::new_err)?;
        super::events::response_started(py, &self.core, status, response_headers, exc_info);
        Ok(self.write.clone_ref(py))
    }
}

/// The `write()` callable of PEP 3333: unbuffered body output for legacy applications.
#[pyclass(module = "mod_wsgi", name = "Write", frozen)]
pub struct Write {
    core: Core,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "write() argument must be bytes, not {}",
                data.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
        })?;
        super::response::write_block(py, &self.core, bytes, true)
    }
}
