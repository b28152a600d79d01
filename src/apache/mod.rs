//! Everything that talks to Apache httpd: bindings, the module record and directive table, hooks,
//! request I/O and logging. Nothing here is reached by unit tests (httpd's symbols live in the
//! server executable); the logic it calls is plain Rust elsewhere in the crate.

mod auth;
mod boundary;
mod brigade;
mod cfg;
mod daemon;
mod directives;
pub mod ffi;
mod hooks;
mod log;
pub mod module;
mod proxy;
mod handler;
mod request;
mod request_io;
mod scoreboard;
