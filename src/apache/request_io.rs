//! Request I/O in embedded mode: [`RequestIo`] over an Apache `request_rec`.

use std::ffi::CString;
use std::os::fd::RawFd;

use super::brigade;
use super::ffi;
use super::log;
use crate::wsgi::{IoError, RequestIo, ResponseHead, Severity};

/// One Apache request, for the WSGI adapter.
pub struct ApacheIo {
    r: *mut ffi::request_rec,
    bb_in: *mut ffi::apr_bucket_brigade,
    /// Output not yet passed down the filter chain: small blocks are collected so that a whole
    /// short response (and its end of stream) goes down at once and Apache can set
    /// Content-Length itself.
    bb_out: *mut ffi::apr_bucket_brigade,
    pending: usize,
    eof: bool,
    sendfile: bool,
    /// WSGIErrorOverride: an error status from the application is left to Apache's
    /// ErrorDocument; the status is recorded here and the application's body dropped.
    error_override: bool,
    overridden: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

/// Output collected beyond this is passed on without waiting for more.
const PASS_AT: usize = 64 * 1024;

// SAFETY: every use goes through the request's `Core` mutex, so calls are serialised even if an
// application hands wsgi.input to another thread. Apache keeps the request and its pool alive
// until the handler returns, and `wsgi::serve` takes this object out of the `Core` before it
// returns (also when unwinding), so no Python object can reach it afterwards.
unsafe impl Send for ApacheIo {}

fn status_error(op: &str, rv: ffi::apr_status_t) -> IoError {
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: apr_strerror writes at most buf.len() bytes including the NUL into our buffer.
    let msg = unsafe {
        ffi::apr_strerror(rv, buf.as_mut_ptr(), buf.len());
        std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    };
    let gone = rv == libc::ECONNRESET
        || rv == libc::ECONNABORTED
        || rv == libc::EPIPE
        || rv == ffi::APR_EOF
        || rv == ffi::APR_TIMEUP
        || rv == libc::ETIMEDOUT
        || rv == ffi::AP_FILTER_ERROR;
    let text = format!("{op}: {msg} (status {rv})");
    if rv == libc::ENOSPC {
        return IoError::TooLarge(format!("{op}: the request body exceeds LimitRequestBody"));
    }
    if gone { IoError::ClientGone(text) } else { IoError::Other(text) }
}

/// A str of code points below 256 (validated by start_response) as latin-1 bytes.
fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

unsafe extern "C" fn close_fd(data: *mut libc::c_void) -> ffi::apr_status_t {
    // SAFETY: data carries a descriptor this module dup'ed and owns.
    unsafe { libc::close(data as usize as i32) };
    0
}

impl ApacheIo {
    /// # Safety
    /// `r` must be the live request of the calling handler and outlive the returned object.
    pub unsafe fn new(r: *mut ffi::request_rec, sendfile: bool) -> Self {
        // SAFETY: r is live (caller); the brigades are allocated from the request pool.
        unsafe {
            let alloc = (*(*r).connection).bucket_alloc;
            let bb_in = ffi::apr_brigade_create((*r).pool, alloc);
            let bb_out = ffi::apr_brigade_create((*r).pool, alloc);
            ApacheIo { r, bb_in, bb_out, pending: 0, eof: false, sendfile, error_override: false, overridden: Default::default() }
        }
    }

    /// Turns on WSGIErrorOverride; the returned handle tells the handler which status (if any)
    /// it must return for Apache to render.
    pub fn override_errors(&mut self) -> std::sync::Arc<std::sync::atomic::AtomicU16> {
        self.error_override = true;
        self.overridden.clone()
    }

    fn is_overridden(&self) -> bool {
        self.overridden.load(std::sync::atomic::Ordering::Relaxed) != 0
    }

    fn pool(&self) -> *mut ffi::apr_pool_t {
        // SAFETY: r is live for our lifetime.
        unsafe { (*self.r).pool }
    }

    fn alloc(&self) -> *mut ffi::apr_bucket_alloc_t {
        // SAFETY: r and its connection are live.
        unsafe { (*(*self.r).connection).bucket_alloc }
    }

    fn pstr(&self, s: &str) -> *mut libc::c_char {
        let b = latin1(s);
        // SAFETY: copies len bytes into the request pool and NUL-terminates.
        unsafe { ffi::apr_pstrmemdup(self.pool(), b.as_ptr().cast(), b.len()) }
    }

    fn client_aborted(&self) -> bool {
        // SAFETY: r and its connection are live.
        unsafe { (*(*self.r).connection).aborted != 0 }
    }

    /// Passes what is collected down the filter chain, optionally with a FLUSH.
    fn pass(&mut self, flush: bool) -> Result<(), IoError> {
        // SAFETY: bb_out is our brigade; buckets in it are either copies (heap) or transient
        // buckets whose memory the caller keeps alive until this returns (filters set aside
        // what they keep).
        unsafe {
            if flush {
                brigade::insert_tail(self.bb_out, ffi::apr_bucket_flush_create(self.alloc()));
            }
            let rv = ffi::ap_pass_brigade((*self.r).output_filters, self.bb_out);
            ffi::apr_brigade_cleanup(self.bb_out.cast());
            self.pending = 0;
            if rv != 0 || self.client_aborted() {
                return Err(if rv != 0 { status_error("writing the response", rv) } else { IoError::ClientGone("connection aborted".into()) });
            }
        }
        Ok(())
    }
}

impl RequestIo for ApacheIo {
    fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        if self.eof || buf.is_empty() {
            return Ok(0);
        }
        loop {
            // SAFETY: r is live; bb_in is our brigade; the filters fill it with at most buf.len()
            // bytes (READBYTES) and flatten copies at most *len bytes into buf.
            unsafe {
                let rv = ffi::ap_get_brigade(
                    (*self.r).input_filters,
                    self.bb_in,
                    ffi::ap_input_mode_t_AP_MODE_READBYTES,
                    ffi::apr_read_type_e_APR_BLOCK_READ,
                    buf.len() as ffi::apr_off_t,
                );
                if rv != 0 {
                    ffi::apr_brigade_cleanup(self.bb_in.cast());
                    if rv == ffi::APR_TIMEUP || rv == libc::ETIMEDOUT {
                        return Err(IoError::TimedOut(format!("the client sent no request body data for the server's Timeout (status {rv})")));
                    }
                    return Err(status_error("reading the request body", rv));
                }
                let eos = brigade::has_eos(self.bb_in);
                let mut len = buf.len() as ffi::apr_size_t;
                let rv = ffi::apr_brigade_flatten(self.bb_in, buf.as_mut_ptr().cast(), &mut len);
                ffi::apr_brigade_cleanup(self.bb_in.cast());
                if rv != 0 {
                    return Err(status_error("reading the request body", rv));
                }
                if eos {
                    self.eof = true;
                }
                if len > 0 || self.eof {
                    return Ok(len as usize);
                }
            }
        }
    }

    fn send_head(&mut self, head: &ResponseHead) -> Result<(), IoError> {
        if self.error_override && head.code >= 400 {
            self.overridden.store(head.code, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        }
        // SAFETY: r is live; every string handed to Apache is copied into the request pool first.
        unsafe {
            (*self.r).status = head.code as i32;
            (*self.r).status_line = self.pstr(&head.status);
            for (name, value) in &head.headers {
                if name.eq_ignore_ascii_case("content-type") {
                    ffi::ap_set_content_type(self.r, self.pstr(value));
                } else if name.eq_ignore_ascii_case("content-length") {
                    if let Ok(n) = value.trim().parse::<i64>() {
                        ffi::ap_set_content_length(self.r, n);
                    }
                } else if name.eq_ignore_ascii_case("set-cookie") {
                    // Cookies cannot be folded into one field: one line each.
                    ffi::apr_table_add((*self.r).headers_out, self.pstr(name), self.pstr(value));
                } else {
                    // A repeated field is folded into one comma-separated value (RFC 9110
                    // 5.3), as mod_wsgi's daemon mode does, so both modes answer alike.
                    ffi::apr_table_merge((*self.r).headers_out, self.pstr(name), self.pstr(value));
                }
            }
        }
        Ok(())
    }

    fn write_body(&mut self, data: &[u8], flush: bool) -> Result<(), IoError> {
        if self.is_overridden() {
            return Ok(());
        }
        if self.client_aborted() {
            return Err(IoError::ClientGone("connection aborted".into()));
        }
        // SAFETY: a large block is passed on before we return (transient: the filters copy what
        // they keep); a small one is copied into a heap bucket now.
        unsafe {
            if data.len() >= PASS_AT {
                let e = ffi::apr_bucket_transient_create(data.as_ptr().cast(), data.len(), self.alloc());
                brigade::insert_tail(self.bb_out, e);
                return self.pass(flush);
            }
            let e = ffi::apr_bucket_heap_create(data.as_ptr().cast(), data.len(), None, self.alloc());
            brigade::insert_tail(self.bb_out, e);
        }
        self.pending += data.len();
        if flush || self.pending >= PASS_AT { self.pass(flush) } else { Ok(()) }
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> Result<bool, IoError> {
        if self.is_overridden() {
            return Ok(true);
        }
        // SAFETY: the descriptor is duplicated, so the application may close its file at once;
        // the duplicate is closed by a cleanup on the request pool, after Apache sent the data.
        // apr_os_file_put wraps it without registering a cleanup of its own.
        unsafe {
            let dup = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
            if dup < 0 {
                return Ok(false);
            }
            ffi::apr_pool_cleanup_register(self.pool(), dup as usize as *const libc::c_void, Some(close_fd), Some(ffi::apr_pool_cleanup_null));
            let mut file: *mut ffi::apr_file_t = std::ptr::null_mut();
            let mut osfd: ffi::apr_os_file_t = dup;
            let mut flags = ffi::APR_FOPEN_READ;
            if self.sendfile {
                flags |= ffi::APR_FOPEN_SENDFILE_ENABLED;
            }
            if ffi::apr_os_file_put(&mut file, &mut osfd, flags, self.pool()) != 0 {
                return Ok(false);
            }
            ffi::apr_brigade_insert_file(self.bb_out, file, offset as ffi::apr_off_t, len as ffi::apr_off_t, self.pool());
        }
        self.pending += PASS_AT / 2;
        Ok(true)
    }

    fn may_block(&self, len: usize) -> bool {
        self.pending + len >= PASS_AT
    }

    fn abort(&mut self) {
        // What the application already produced goes out first (with the head), so the error
        // bucket below can only cut the response, never replace it.
        if self.pending > 0 && self.pass(true).is_err() {
            return;
        }
        // SAFETY: r is live. An error bucket with 502 makes the chunk filter leave the body
        // unterminated and the connection is closed after this response.
        unsafe {
            let c = (*self.r).connection;
            (*c).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
            let e = ffi::ap_bucket_error_create(ffi::HTTP_BAD_GATEWAY, std::ptr::null(), self.pool(), self.alloc());
            brigade::insert_tail(self.bb_out, e);
        }
        let _ = self.pass(true);
    }

    fn finish(&mut self) -> Result<(), IoError> {
        if self.is_overridden() {
            // The handler returns the status; Apache sends its own error response.
            return Ok(());
        }
        // SAFETY: appending the end-of-stream bucket to our brigade.
        unsafe { brigade::insert_tail(self.bb_out, ffi::apr_bucket_eos_create(self.alloc())) };
        self.pass(false)
    }

    fn header_only(&self) -> bool {
        // SAFETY: r is live.
        unsafe { (*self.r).header_only != 0 }
    }

    fn log(&self, severity: Severity, message: &str) {
        log::log_request(self.r, log::severity_level(severity), message);
    }
}

/// A C string from a Rust string, with NUL bytes escaped (never fails).
pub fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}
