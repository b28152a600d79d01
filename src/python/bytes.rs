//! Making `bytes` and `str` objects straight from raw data, behind safe functions (the WSGI
//! adapter in `crate::wsgi` uses these and needs no `unsafe` of its own).

use std::ptr::NonNull;

use pyo3::exceptions::PyOverflowError;
use pyo3::ffi;
use pyo3::ffi::compat::{PyBytesWriter, PyBytesWriter_Create, PyBytesWriter_Discard, PyBytesWriter_FinishWithSize, PyBytesWriter_GetData};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// A `bytes` object under construction (CPython's PyBytesWriter, which pyo3 provides for every
/// Python version): owns its buffer until finished; discarded if dropped unfinished.
struct Writer(NonNull<PyBytesWriter>);

impl Drop for Writer {
    fn drop(&mut self) {
        // SAFETY: the writer is live (finishing consumes it with mem::forget, so drop only sees
        // unfinished ones), and a Writer only exists in a frame that holds the GIL: it is neither
        // Send nor handed to the code that runs with the GIL released.
        unsafe { PyBytesWriter_Discard(self.0.as_ptr()) };
    }
}

/// The writer's buffer, to be filled with the GIL released.
struct RawBuf(*mut u8, usize);

// SAFETY: the buffer belongs to a writer that no other code can see (it is not a Python object
// yet), and it stays allocated until the writer is finished or discarded, which happens only
// after the filling closure has returned; so moving the pointer into that closure (run on this
// same OS thread with the GIL released) gives it exclusive access.
unsafe impl Send for RawBuf {}

/// Makes a `bytes` object of at most `n` bytes whose data `fill` writes in place, with the GIL
/// released: no intermediate Rust buffer and no copy. `fill` gets the whole buffer (zeroed) and
/// returns how many bytes it wrote at its front; the object is cut to that many (more counts as
/// `n`). An error from `fill` is returned as is, and the buffer is freed.
pub fn filled<'py, F>(py: Python<'py>, n: usize, fill: F) -> PyResult<Bound<'py, PyBytes>>
where
    F: FnOnce(&mut [u8]) -> PyResult<usize> + Send,
{
    let size = ffi::Py_ssize_t::try_from(n).map_err(|_| PyOverflowError::new_err("size too large for a bytes object"))?;
    // SAFETY: the GIL is held (py); Create returns a new writer of `size` bytes, or NULL with an
    // exception set.
    let Some(w) = NonNull::new(unsafe { PyBytesWriter_Create(size) }) else { return Err(PyErr::fetch(py)) };
    let writer = Writer(w);
    // SAFETY: the writer is live; its data pointer is valid for `size` writable bytes until the
    // writer is finished or discarded.
    let buf = RawBuf(unsafe { PyBytesWriter_GetData(w.as_ptr()) }.cast(), n);
    let got = py.detach(move || {
        let buf = buf;
        // SAFETY: see RawBuf: exclusive access to n writable bytes, zeroed before the slice is
        // made so that every byte `fill` may read is initialised.
        let dst = unsafe {
            std::ptr::write_bytes(buf.0, 0, buf.1);
            std::slice::from_raw_parts_mut(buf.0, buf.1)
        };
        fill(dst)
    })?;
    std::mem::forget(writer);
    // SAFETY: the GIL is held again; FinishWithSize consumes the live writer (whatever the
    // outcome) and returns a new reference to a bytes object holding the first `got` <= n bytes
    // of the buffer, or NULL with an exception set.
    let obj = unsafe { PyBytesWriter_FinishWithSize(w.as_ptr(), got.min(n) as ffi::Py_ssize_t) };
    // SAFETY: obj is a new (owned) reference or NULL with an exception set.
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, obj) }?;
    Ok(obj.cast_into::<PyBytes>()?)
}

/// Decodes `bytes` as latin-1 (each byte is the code point of the same value), as PEP 3333
/// wants for CGI values, in one pass by CPython.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len()).map_err(|_| PyOverflowError::new_err("string too long"))?;
    // SAFETY: the GIL is held (py); PyUnicode_DecodeLatin1 reads `len` bytes from our slice and
    // returns a new reference to a str, or NULL with an exception set (latin-1 decoding itself
    // cannot fail, so the errors argument may be NULL).
    let obj = unsafe { ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null()) };
    // SAFETY: obj is a new (owned) reference or NULL with an exception set.
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, obj) }?;
    Ok(obj.cast_into::<PyString>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::exceptions::PyOSError;

    #[test]
    fn filled_bytes_are_cut_to_what_was_written() {
        Python::initialize();
        Python::attach(|py| {
            for n in [0usize, 5, 300, 100_000] {
                let b = filled(py, n, |buf| {
                    assert!(buf.iter().all(|&x| x == 0));
                    let k = buf.len() / 2;
                    buf[..k].fill(b'a');
                    Ok(k)
                })
                .unwrap();
                assert_eq!(b.as_bytes(), vec![b'a'; n / 2].as_slice());
            }
            let b = filled(py, 4, |buf| {
                buf.copy_from_slice(b"wxyz");
                Ok(99)
            })
            .unwrap();
            assert_eq!(b.as_bytes(), b"wxyz");
            let e = filled(py, 1000, |_| Err(PyOSError::new_err("boom"))).unwrap_err();
            assert!(e.is_instance_of::<PyOSError>(py));
        });
    }

    #[test]
    fn latin1_maps_each_byte_to_its_code_point() {
        Python::initialize();
        Python::attach(|py| {
            assert_eq!(latin1(py, b"plain ascii").unwrap().to_str().unwrap(), "plain ascii");
            assert_eq!(latin1(py, b"caf\xe9 \xff\x00").unwrap().to_str().unwrap(), "caf\u{e9} \u{ff}\u{0}");
            assert_eq!(latin1(py, b"").unwrap().to_str().unwrap(), "");
        });
    }
}
