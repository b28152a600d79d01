//! mod_wsgi rebuilt in Rust.
//!
//! Layout (one folder per concern):
//! - `apache/`  — the only code that talks to httpd: bindings, module record, directive callbacks,
//!   hooks, request I/O, logging. Not compiled into unit tests (httpd symbols live in the server).
//! - `python/`  — the only code that talks to CPython: interpreter life cycle, script loading,
//!   making `bytes`/`str` objects from raw data.
//! - `wsgi/`    — the WSGI adapter (environ, start_response, input, errors, file_wrapper, the
//!   response loop), written once over the `wsgi::io::RequestIo` trait so embedded and daemon
//!   mode share it.
//! - `config/`  — directive parsing and configuration merging (pure Rust).
//! - `mount`    — WSGIScriptAlias URL matching (pure Rust).
//! - `sys/`     — the system calls of the daemon side behind safe functions (sockets, epoll,
//!   fork, signals, ...).
//!
//! Code the compiler cannot check lives only in `apache/`, `python/` and `sys/`, each block with a
//! `// SAFETY:` comment saying why it is sound (clippy checks that); the other modules forbid it.
#![warn(clippy::undocumented_unsafe_blocks)]
// A nested `if` keeps two separate questions apart (is it set? is it wrong?); this code does not
// merge them into let-chains.
#![allow(clippy::collapsible_if)]

#[cfg(not(test))]
mod apache;
#[forbid(unsafe_code)]
pub mod config;
pub mod codes;
#[forbid(unsafe_code)]
pub mod wsgi;
pub mod python;
#[forbid(unsafe_code)]
pub mod protocol;
#[forbid(unsafe_code)]
pub mod daemon;
pub mod sys;
