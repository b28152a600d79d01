//! `start_response` and the `write()` callable it returns (PEP 3333).

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::core::Core;
use super::io::ResponseHead;
use super::validate;

// Raised for a bad status or header; the response loop logs it as one line, without traceback.
pyo3::create_exception!(mod_wsgi, BadResponse, PyValueError);

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

fn as_str<'a>(v: &'a Bound<'_, PyAny>, what: &str) -> PyResult<std::borrow::Cow<'a, str>> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?),
        Err(_) => Err(BadResponse::new_err(format!(
            "{what} must be str, not {} ({})",
            v.get_type().name()?,
            v.repr()?
        ))),
    }
}

/// Turns `(status, headers)` into a validated head.
fn parse_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<ResponseHead> {
    let status = as_str(status, "status")?;
    let code = validate::status(&status).map_err(BadResponse::new_err)?;
    let list = headers.cast::<PyList>().map_err(|_| {
        BadResponse::new_err(format!(
            "response headers must be a list, not {}",
            headers.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let pair = item.cast::<PyTuple>().map_err(|_| {
            BadResponse::new_err(format!("response header {} must be a (name, value) tuple", item.repr().map(|r| r.to_string()).unwrap_or_default()))
        })?;
        if pair.len() != 2 {
            return Err(BadResponse::new_err(format!(
                "response header {} must be a (name, value) tuple of length 2",
                pair.repr()?
            )));
        }
        let name = as_str(&pair.get_item(0)?, "response header name")?.into_owned();
        let value = as_str(&pair.get_item(1)?, &format!("value of response header {name:?}"))?.into_owned();
        validate::header_name(&name).map_err(BadResponse::new_err)?;
        validate::header_value(&name, &value).map_err(BadResponse::new_err)?;
        if name.eq_ignore_ascii_case("content-length") && value.trim().parse::<u64>().is_err() {
            return Err(BadResponse::new_err(format!("Content-Length {value:?} is not a number")));
        }
        out.push((name, value));
    }
    Ok(ResponseHead { code, status: status.into_owned(), headers: out })
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
        let (head_set, head_sent) = self
            .core
            .with(|s| (s.response.head.is_some(), s.response.head_sent))
            .map_err(PyRuntimeError::new_err)?;
        if let Some(info) = exc_info {
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
        } else if head_set {
            return Err(PyRuntimeError::new_err(
                "start_response() was called a second time without exc_info",
            ));
        }
        let head = parse_head(status, response_headers)?;
        let cl = head.content_length();
        self.core
            .with(|s| {
                s.response.head = Some(head);
                s.response.content_length = cl;
            })
            .map_err(PyRuntimeError::new_err)?;
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
