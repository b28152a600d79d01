//! The CPython side: starting Python in a process, per-thread thread states, the interpreter
//! pool (one interpreter per application group) and loading WSGI script files. (The WSGI adapter
//! itself is in `crate::wsgi`.)

pub mod bytes;
pub mod interp;
pub mod interrupt;

use std::sync::{Condvar, Mutex};

use pyo3::Python;

/// A lock that is waited for with the GIL released and may be held while Python runs (a flag
/// and a condition variable, not a guard tied to the GIL): for work that runs Python code but
/// must happen once at a time, such as executing a script or creating an interpreter.
pub struct PyExclusive {
    busy: Mutex<bool>,
    done: Condvar,
}

/// Holds a [`PyExclusive`] until dropped.
pub struct PyExclusiveGuard<'a>(&'a PyExclusive);

impl Default for PyExclusive {
    fn default() -> Self {
        Self::new()
    }
}

impl PyExclusive {
    pub const fn new() -> Self {
        PyExclusive { busy: Mutex::new(false), done: Condvar::new() }
    }

    pub fn acquire(&self, py: Python<'_>) -> PyExclusiveGuard<'_> {
        py.detach(|| {
            let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
            while *busy {
                busy = self.done.wait(busy).unwrap_or_else(|e| e.into_inner());
            }
            *busy = true;
        });
        PyExclusiveGuard(self)
    }
}

impl Drop for PyExclusiveGuard<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.0.done.notify_all();
    }
}
pub mod pool;
pub mod scripts;
