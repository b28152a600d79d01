//! mod_wsgi rebuilt in Rust.
//!
//! Layout (one folder per concern):
//! - `apache/`  — the only code that talks to httpd: bindings, module record, directive callbacks,
//!   hooks, request I/O, logging. Not compiled into unit tests (httpd symbols live in the server).
//! - `python/`  — the only code that talks to CPython: interpreter life cycle, script loading.
//! - `wsgi/`    — the WSGI adapter (environ, start_response, input, errors, file_wrapper, the
//!   response loop), written once over the `wsgi::io::RequestIo` trait so embedded and daemon
//!   mode share it.
//! - `config/`  — directive parsing and configuration merging (pure Rust).
//! - `mount`    — WSGIScriptAlias URL matching (pure Rust).
#[cfg(not(test))]
mod apache;
pub mod config;
pub mod codes;
pub mod wsgi;
pub mod python;
pub mod protocol;
pub mod daemon;
