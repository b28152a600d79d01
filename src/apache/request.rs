//! A safe view of Apache's `request_rec` for the handler: everything it reads (request line,
//! headers, the CGI environment, the mount `translate_name` found, server facts) as byte slices
//! that live as long as the request.

use std::ffi::{CStr, c_char};
use std::marker::PhantomData;
use std::time::Duration;

use super::cfg;
use super::ffi;
use super::log;
use crate::config::{DirSettings, HandlerScript, ScriptAlias};

/// What `translate_name` found for a request, kept for the handler (allocated in the request
/// pool, so it lives as long as the request).
#[repr(C)]
pub struct Hit {
    pub alias: *const ScriptAlias,
    /// Null when the mount is a folder of scripts: Apache's directory walk then finds the
    /// script in `r->filename` and the rest of the URL in `r->path_info`.
    pub script: *const c_char,
    pub script_name: *const c_char,
    pub path_info: *const c_char,
}

/// The mount a request was mapped to by `WSGIScriptAlias` / `WSGIScriptAliasMatch`.
pub struct Mount<'r> {
    pub alias: &'r ScriptAlias,
    pub script: &'r [u8],
    pub script_name: &'r [u8],
    pub path_info: &'r [u8],
}

/// What the request's file is, as Apache's directory walk found it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Missing,
    Directory,
    Other,
}

/// The live request of a running hook.
#[derive(Clone, Copy)]
pub struct Request<'r> {
    r: *mut ffi::request_rec,
    _life: PhantomData<&'r ffi::request_rec>,
}

/// Bytes of a NUL-terminated string from the request's pool (empty for NULL).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that lives at least for `'r`.
unsafe fn bytes<'r>(p: *const c_char) -> &'r [u8] {
    if p.is_null() {
        return b"";
    }
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(p).to_bytes() }
}

impl<'r> Request<'r> {
    /// # Safety
    /// `r` must be the live request of the calling hook, and the view (and everything borrowed
    /// from it) must not be used after the hook returns.
    pub unsafe fn from_raw(r: *mut ffi::request_rec) -> Self {
        Request { r, _life: PhantomData }
    }

    /// The raw record, for the request I/O layer and logging.
    pub fn raw(&self) -> *mut ffi::request_rec {
        self.r
    }

    fn rec(&self) -> &'r ffi::request_rec {
        // SAFETY: `from_raw`'s contract: r is live for 'r.
        unsafe { &*self.r }
    }

    fn conn(&self) -> &'r ffi::conn_rec {
        // SAFETY: a live request always has its live connection.
        unsafe { &*self.rec().connection }
    }

    fn server(&self) -> &'r ffi::server_rec {
        // SAFETY: a live request always has its live server.
        unsafe { &*self.rec().server }
    }

    /// A string field of the request record.
    fn field(&self, p: *const c_char) -> &'r [u8] {
        // SAFETY: the request record's strings are in its pool (or static), alive for 'r.
        unsafe { bytes(p) }
    }

    pub fn handler(&self) -> &'r [u8] {
        self.field(self.rec().handler)
    }
    pub fn filename(&self) -> &'r [u8] {
        self.field(self.rec().filename)
    }
    pub fn uri(&self) -> &'r [u8] {
        self.field(self.rec().uri)
    }
    pub fn unparsed_uri(&self) -> &'r [u8] {
        self.field(self.rec().unparsed_uri)
    }
    pub fn path_info(&self) -> &'r [u8] {
        self.field(self.rec().path_info)
    }
    pub fn method(&self) -> &'r [u8] {
        self.field(self.rec().method)
    }
    pub fn protocol(&self) -> &'r [u8] {
        self.field(self.rec().protocol)
    }
    pub fn query_string(&self) -> &'r [u8] {
        self.field(self.rec().args)
    }
    pub fn header_only(&self) -> bool {
        self.rec().header_only != 0
    }
    /// The script file's modification time (microseconds), as Apache stat'ed it.
    pub fn mtime(&self) -> i64 {
        self.rec().finfo.mtime
    }
    /// When the request line was read (microseconds since the epoch).
    pub fn request_time(&self) -> i64 {
        self.rec().request_time
    }

    pub fn file_type(&self) -> FileType {
        match self.rec().finfo.filetype {
            ffi::apr_filetype_e_APR_NOFILE => FileType::Missing,
            ffi::apr_filetype_e_APR_DIR => FileType::Directory,
            _ => FileType::Other,
        }
    }

    /// Whether `Options ExecCGI` is on for the request's directory.
    pub fn allows_exec_cgi(&self) -> bool {
        // SAFETY: ap_allow_options only reads the live request.
        (unsafe { ffi::ap_allow_options(self.r) } & ffi::OPT_EXECCGI) != 0
    }

    /// `LimitRequestBody` for this request (0: no limit).
    pub fn limit_request_body(&self) -> i64 {
        // SAFETY: only reads the live request's configuration.
        unsafe { ffi::ap_get_limit_req_body(self.r) }
    }

    fn table_get(&self, t: *const ffi::apr_table_t, key: &str) -> Option<&'r [u8]> {
        let key = std::ffi::CString::new(key).ok()?;
        // SAFETY: t is one of the live request's tables; values live in its pool.
        unsafe {
            let v = ffi::apr_table_get(t, key.as_ptr());
            if v.is_null() { None } else { Some(bytes(v)) }
        }
    }

    /// A request header.
    pub fn header_in(&self, name: &str) -> Option<&'r [u8]> {
        self.table_get(self.rec().headers_in, name)
    }

    /// A variable of the request's environment (`subprocess_env`).
    pub fn env(&self, name: &str) -> Option<&'r [u8]> {
        self.table_get(self.rec().subprocess_env, name)
    }

    /// Adds Apache's common CGI variables (HTTP_*, SERVER_*, REMOTE_*, ...) to the environment.
    pub fn add_common_vars(&self) {
        // SAFETY: the live request; Apache allocates the values in its pool.
        unsafe { ffi::ap_add_common_vars(self.r) }
    }

    /// Every (name, value) of the request's environment, in table order.
    pub fn env_entries(&self) -> Vec<(&'r [u8], &'r [u8])> {
        // SAFETY: the table and its entries live in the request pool; nelts entries follow elts.
        unsafe {
            let env = ffi::apr_table_elts(self.rec().subprocess_env);
            let entries = std::slice::from_raw_parts((*env).elts as *const ffi::apr_table_entry_t, (*env).nelts.max(0) as usize);
            entries.iter().filter(|e| !e.key.is_null()).map(|e| (bytes(e.key), bytes(e.val))).collect()
        }
    }

    /// The mount `translate_name` mapped this request to, if any.
    pub fn mount(&self) -> Option<Mount<'r>> {
        // SAFETY: our request config slot holds a Hit allocated in the request pool by
        // translate_name (or nothing); its alias points into the server configuration, which
        // outlives every request.
        unsafe {
            let hit = ffi::ap_get_module_config(self.rec().request_config, &raw const super::module::wsgi_module) as *const Hit;
            let hit = hit.as_ref()?;
            if hit.script.is_null() {
                // A folder of scripts: SCRIPT_NAME is the URL up to the script file.
                let (uri, path_info) = (self.uri(), self.path_info());
                let script_name = uri.strip_suffix(path_info).unwrap_or(uri);
                return Some(Mount { alias: &*hit.alias, script: self.filename(), script_name, path_info });
            }
            Some(Mount { alias: &*hit.alias, script: bytes(hit.script), script_name: bytes(hit.script_name), path_info: bytes(hit.path_info) })
        }
    }

    /// The merged per-directory settings.
    pub fn dir_settings(&self) -> Option<&'r DirSettings> {
        // SAFETY: the live request; the merged record lives in the request's pool.
        unsafe { cfg::dir_cfg(self.r) }
    }

    /// `ServerName` of the virtual host that serves the request.
    /// The WSGIHandlerScript (of this request's server) serving the request's Apache handler.
    pub fn handler_script(&self) -> Option<&'r HandlerScript> {
        // SAFETY: the server record's configuration lives as long as the request.
        let c = unsafe { cfg::server_cfg(self.rec().server) };
        c.settings.handler_script(self.handler())
    }

    pub fn server_name(&self) -> &'r [u8] {
        self.field(self.server().server_hostname)
    }

    /// The port the request is served on, as Apache reports it for CGI.
    pub fn server_port(&self) -> u16 {
        // SAFETY: only reads the live request.
        unsafe { ffi::ap_get_server_port(self.r) }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'r [u8] {
        // SAFETY: the hook returns a static or pool string for the live request.
        self.field(unsafe { ffi::ap_run_http_scheme(self.r) })
    }

    /// The server's `Timeout`.
    pub fn server_timeout(&self) -> Duration {
        Duration::from_micros(self.server().timeout.max(0) as u64)
    }

    /// The local address the connection arrived on.
    pub fn local_ip(&self) -> &'r [u8] {
        self.field(self.conn().local_ip)
    }
    pub fn local_port(&self) -> u16 {
        // SAFETY: a live connection has its local address.
        unsafe { (*self.conn().local_addr).port }
    }

    /// The client's address (the peer, or what mod_remoteip made of it).
    pub fn client_ip(&self) -> &'r [u8] {
        self.field(self.rec().useragent_ip)
    }

    /// The authenticated user (`r->user`), once an authn module set it.
    pub fn user(&self) -> Option<&'r [u8]> {
        let u = self.rec().user;
        (!u.is_null()).then(|| self.field(u))
    }

    /// The client's host name when HostnameLookups finds one, else its address.
    pub fn remote_host(&self) -> &'r [u8] {
        // REMOTE_HOST (http_core.h): the name, or NULL when lookups are off or fail.
        const REMOTE_HOST: i32 = 0;
        // SAFETY: r is live; the returned name (if any) is in the connection's pool.
        let name = unsafe { ffi::ap_get_useragent_host(self.r, REMOTE_HOST, std::ptr::null_mut()) };
        if name.is_null() { self.client_ip() } else { self.field(name) }
    }

    /// The client as `ip:port`.
    pub fn client(&self) -> String {
        let rec = self.rec();
        // SAFETY: useragent_addr is null or the live client address.
        let port = if rec.useragent_addr.is_null() { 0 } else { unsafe { (*rec.useragent_addr).port } };
        format!("{}:{port}", String::from_utf8_lossy(self.field(rec.useragent_ip)))
    }

    /// Copies `b` into the request pool, for values that must live as long as the request.
    pub fn pool_bytes(&self, b: &[u8]) -> &'r [u8] {
        // SAFETY: apr_pstrmemdup copies into the live request pool and NUL-terminates.
        unsafe { bytes(ffi::apr_pstrmemdup(self.rec().pool, b.as_ptr().cast(), b.len())) }
    }

    /// PATH_INFO mapped to a file path as Apache's CGI support does (a sub-request for it).
    pub fn translate_path(&self, path_info: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // The bytes as they are (not UTF-8 necessarily); a NUL cannot occur in a decoded URI.
        let Ok(pi) = std::ffi::CString::new(path_info) else { return out };
        // SAFETY: the escaped path and the sub-request live in the request pool; the sub-request
        // is destroyed before returning and nothing borrowed from it is kept.
        unsafe {
            let esc = ffi::ap_os_escape_path(self.rec().pool, pi.as_ptr(), 1);
            let sub = ffi::ap_sub_req_lookup_uri(esc, self.r, std::ptr::null_mut());
            if !sub.is_null() {
                out.extend_from_slice(bytes((*sub).filename));
                out.extend_from_slice(bytes((*sub).path_info));
                ffi::ap_destroy_sub_req(sub);
            }
        }
        out
    }

    /// Logs against the request (Apache adds the client's address).
    pub fn log(&self, level: i32, msg: &str) {
        log::log_request(self.r, level, msg);
    }
}
