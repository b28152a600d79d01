//! Logging into Apache's error log.
//!
//! Process-level messages go through `tracing` (a minimal subscriber installed per process that
//! calls `ap_log_error_` against the main server, honouring `LogLevel` and `LogLevel wsgi:LEVEL`);
//! request-level messages go through [`log_request`] so Apache adds the client's address.

use std::ffi::CString;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, span};

use super::ffi;
use crate::wsgi::Severity;

/// This module's index in Apache's module list (for per-module log levels).
// Through `&raw const`, so no reference to the mutable static is made (which Rust 2024 forbids).
#[allow(clippy::deref_addrof)]
pub fn module_index() -> i32 {
    // SAFETY: module_index is written by Apache when it loads the module, before any hook runs;
    // reading an int is atomic enough here (it never changes afterwards).
    unsafe { (*(&raw const super::module::wsgi_module)).module_index }
}

fn apache_level(level: &Level) -> i32 {
    match *level {
        Level::ERROR => ffi::APLOG_ERR,
        Level::WARN => ffi::APLOG_WARNING,
        Level::INFO => ffi::APLOG_INFO,
        Level::DEBUG => ffi::APLOG_DEBUG,
        Level::TRACE => ffi::APLOG_TRACE1,
    }
}

pub fn severity_level(s: Severity) -> i32 {
    match s {
        Severity::Error => ffi::APLOG_ERR,
        Severity::Warning => ffi::APLOG_WARNING,
        Severity::Info => ffi::APLOG_INFO,
        Severity::Debug => ffi::APLOG_DEBUG,
    }
}

fn c_message(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).unwrap_or_default()
}

/// Logs against the main server.
pub fn log_server(s: *const ffi::server_rec, level: i32, msg: &str) {
    let c = c_message(msg);
    // SAFETY: `s` is a live server_rec (ap_server_conf or a hook argument); the format is "%s"
    // with one NUL-terminated argument, as ap_log_error_ expects.
    unsafe {
        ffi::ap_log_error_(c"mod_wsgi".as_ptr(), 0, module_index(), level, 0, s, c"%s".as_ptr(), c.as_ptr());
    }
}

/// Logs against a request (Apache prefixes the client's address).
pub fn log_request(r: *const ffi::request_rec, level: i32, msg: &str) {
    // SAFETY: `r` is the live request being handled; ap_get_request_module_loglevel only reads it.
    if unsafe { ffi::ap_get_request_module_loglevel(r, module_index()) } < level {
        return;
    }
    let c = c_message(msg);
    // SAFETY: as in log_server; `r` is the live request.
    unsafe {
        ffi::ap_log_rerror_(c"mod_wsgi".as_ptr(), 0, module_index(), level, 0, r, c"%s".as_ptr(), c.as_ptr());
    }
}

/// The `tracing` subscriber that writes into the error log of `ap_server_conf`.
pub struct ApacheSubscriber;

static NEXT_SPAN: AtomicU64 = AtomicU64::new(1);

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

fn main_server() -> *const ffi::server_rec {
    // SAFETY: ap_server_conf is set by Apache before modules' hooks run and stays valid for the
    // life of the process (a child never re-reads its configuration).
    unsafe { ffi::ap_server_conf }
}

impl Subscriber for ApacheSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let s = main_server();
        if s.is_null() {
            return false;
        }
        // SAFETY: `s` is the live main server record.
        let configured = unsafe { ffi::ap_get_server_module_loglevel(s, module_index()) };
        apache_level(metadata.level()) <= configured
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(NEXT_SPAN.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut v = MessageVisitor(String::new());
        event.record(&mut v);
        log_server(main_server(), apache_level(event.metadata().level()), &v.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// Installs the subscriber for this process (a second call is a no-op).
pub fn install() {
    let _ = tracing::subscriber::set_global_default(ApacheSubscriber);
}
