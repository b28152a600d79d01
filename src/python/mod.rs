//! The CPython side: starting Python in a process, per-thread thread states, the interpreter
//! pool (one interpreter per application group) and loading WSGI script files. (The WSGI adapter
//! itself is in `crate::wsgi`.)

pub mod bytes;
pub mod interp;
pub mod pool;
pub mod scripts;
