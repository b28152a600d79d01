//! A dict made with room for the entries it will get (the environ gets about fifty, and a
//! dict grown one insertion at a time is rebuilt three times on the way).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

unsafe extern "C" {
    // CPython's own presized constructor (exported by libpython since 3.6; not in pyo3's
    // bindings because it is underscored). Returns a new reference, or NULL with an exception.
    fn _PyDict_NewPresized(minused: ffi::Py_ssize_t) -> *mut ffi::PyObject;
}

/// A copy of `template` with room for `room` more entries without growing.
pub fn copy_with_room<'py>(template: &Bound<'py, PyDict>, room: usize) -> PyResult<Bound<'py, PyDict>> {
    let py = template.py();
    let n = ffi::Py_ssize_t::try_from(template.len() + room).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: the GIL is held (template is bound); the call returns a new reference or NULL with
    // an exception set, which from_owned_ptr_or_err turns into Err.
    let d = unsafe { Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(n))? };
    let d = d.cast_into::<PyDict>()?;
    d.update(template.as_mapping())?;
    Ok(d)
}
