//! The CPython side: starting the interpreter in a process, per-thread thread states, and loading
//! WSGI script files. (The WSGI adapter itself is in `crate::wsgi`.)

pub mod interp;
pub mod scripts;
