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
    eof: bool,
    sendfile: bool,
}

// SAFETY: the request_rec is only ever used by the one thread that runs the request (the adapter
// may call us with the GIL released, but from that same thread, and always under the request's
// lock). Apache keeps the request and its pool alive until the handler returns, and the adapter
// drops this object before then.
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
        || rv == ffi::APR_EOF as i32
        || rv == ffi::APR_TIMEUP as i32
        || rv == libc::ETIMEDOUT
        || rv == ffi::AP_FILTER_ERROR;
    let text = format!("{op}: {msg} (status {rv})");
    if gone { IoError::ClientGone(text) } else { IoError::Other(text) }
}

impl ApacheIo {
    /// # Safety
    /// `r` must be the live request of the calling handler and outlive the returned object.
    pub unsafe fn new(r: *mut ffi::request_rec, sendfile: bool) -> Self {
        // SAFETY: r is live (caller); the brigade is allocated from the request pool.
        let bb_in = unsafe { ffi::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc) };
        ApacheIo { r, bb_in, eof: false, sendfile }
    }

    fn pool(&self) -> *mut ffi::apr_pool_t {
        // SAFETY: r is live for our lifetime.
        unsafe { (*self.r).pool }
    }

    fn pstr(&self, s: &str) -> *mut libc::c_char {
        // SAFETY: copies len bytes into the request pool and NUL-terminates.
        unsafe { ffi::apr_pstrmemdup(self.pool(), s.as_ptr().cast(), s.len()) }
    }

    fn client_aborted(&self) -> bool {
        // SAFETY: r and its connection are live.
        unsafe { (*(*self.r).connection).aborted != 0 }
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
                } else {
                    ffi::apr_table_add((*self.r).headers_out, self.pstr(name), self.pstr(value));
                }
            }
        }
        Ok(())
    }

    fn write_body(&mut self, data: &[u8], flush: bool) -> Result<(), IoError> {
        if self.client_aborted() {
            return Err(IoError::ClientGone("connection aborted".into()));
        }
        // SAFETY: r is live; ap_rwrite copies or passes on the bytes before returning.
        let rv = unsafe { ffi::ap_rwrite(data.as_ptr().cast(), data.len() as i32, self.r) };
        if rv < 0 || self.client_aborted() {
            return Err(IoError::ClientGone("failed to write response data".into()));
        }
        if flush {
            // SAFETY: r is live.
            if unsafe { ffi::ap_rflush(self.r) } < 0 || self.client_aborted() {
                return Err(IoError::ClientGone("failed to flush response data".into()));
            }
        }
        Ok(())
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> Result<bool, IoError> {
        // SAFETY: r is live; the apr_file_t wraps `fd` without taking ownership (no cleanup is
        // registered by apr_os_file_put); the brigade is flushed before we return, so Apache is
        // done with the descriptor when the application closes it.
        unsafe {
            ffi::ap_rflush(self.r);
            let mut file: *mut ffi::apr_file_t = std::ptr::null_mut();
            let mut osfd: ffi::apr_os_file_t = fd;
            let mut flags = ffi::APR_FOPEN_READ;
            if self.sendfile {
                flags |= ffi::APR_FOPEN_SENDFILE_ENABLED;
            }
            if ffi::apr_os_file_put(&mut file, &mut osfd, flags, self.pool()) != 0 {
                return Ok(false);
            }
            let c = (*self.r).connection;
            let bb = ffi::apr_brigade_create(self.pool(), (*c).bucket_alloc);
            ffi::apr_brigade_insert_file(bb, file, offset as ffi::apr_off_t, len as ffi::apr_off_t, self.pool());
            brigade::insert_tail(bb, ffi::apr_bucket_flush_create((*c).bucket_alloc));
            let rv = ffi::ap_pass_brigade((*self.r).output_filters, bb);
            ffi::apr_brigade_cleanup(bb.cast());
            if rv != 0 || self.client_aborted() {
                return Err(status_error("sending the file", rv));
            }
        }
        Ok(true)
    }

    fn abort(&mut self) {
        // SAFETY: r is live. An error bucket with 502 makes the chunk filter leave the body
        // unterminated and the connection is closed after this response.
        unsafe {
            ffi::ap_rflush(self.r);
            let c = (*self.r).connection;
            (*c).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
            let bb = ffi::apr_brigade_create(self.pool(), (*c).bucket_alloc);
            let e = ffi::ap_bucket_error_create(ffi::HTTP_BAD_GATEWAY, std::ptr::null(), self.pool(), (*c).bucket_alloc);
            brigade::insert_tail(bb, e);
            brigade::insert_tail(bb, ffi::apr_bucket_flush_create((*c).bucket_alloc));
            ffi::ap_pass_brigade((*self.r).output_filters, bb);
            ffi::apr_brigade_cleanup(bb.cast());
        }
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
