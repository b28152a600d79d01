//! Apache hooks: configuration passes, child start-up (Python initialisation), URL mapping for
//! WSGIScriptAlias, and the request handler for embedded mode.

use std::ffi::{CStr, c_char, c_int};
use std::sync::atomic::{AtomicU64, Ordering};


use super::cfg::{self, with_global};
use super::ffi;
use super::log;
use super::request::{ApacheIo, cstring};
use crate::codes;
use crate::config::{self as conf, DirSettings, ScriptAlias};
use crate::python::{interp, pool, scripts};
use crate::wsgi::{self, environ::ProcessInfo, environ::RequestInfo};

const HANDLER_NAMES: [&[u8]; 2] = [b"wsgi-script", b"application/x-httpd-wsgi"];

/// Runs a hook body, turning a panic into `on_panic` and a log line: no panic may unwind into C.
fn guard<T>(what: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            // SAFETY: ap_server_conf is valid in every hook after configuration.
            log::log_server(unsafe { ffi::ap_server_conf }, ffi::APLOG_CRIT, &format!("{}: internal error in {what}: {msg}; the request failed but the process keeps serving", codes::INTERNAL_PANIC));
            on_panic
        }
    }
}

pub unsafe extern "C" fn pre_config(_pconf: *mut ffi::apr_pool_t, _plog: *mut ffi::apr_pool_t, _ptemp: *mut ffi::apr_pool_t) -> c_int {
    guard("pre_config", ffi::OK, || {
        *cfg::GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(cfg::Global::default());
        ffi::OK
    })
}

pub unsafe extern "C" fn post_config(
    pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> c_int {
    guard("post_config", ffi::OK, || {
        let (maj, min, pat) = wsgi::environ::VERSION;
        let component = cstring(&format!("mod_wsgi/{maj}.{min}.{pat}"));
        let python = cstring(&format!("Python/{}", interp::python_version()));
        // SAFETY: pconf is the live configuration pool; Apache copies nothing, so the strings
        // are duplicated into the pool first.
        unsafe {
            ffi::ap_add_version_component(pconf, ffi::apr_pstrdup(pconf, component.as_ptr()));
            ffi::ap_add_version_component(pconf, ffi::apr_pstrdup(pconf, python.as_ptr()));
        }
        // Warn once per start (not in the first of Apache's two configuration passes).
        // SAFETY: ap_state_query only reads global state.
        let first_pass = unsafe { ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE) } == ffi::AP_SQ_MS_CREATE_PRE_CONFIG;
        if !first_pass {
            let pending = with_global(|g| std::mem::take(&mut g.unimplemented));
            for item in pending {
                log::log_server(s, ffi::APLOG_WARNING | ffi::APLOG_STARTUP, &format!(
                    "{}: {item} is accepted for compatibility but not implemented by this version of mod_wsgi; it has no effect",
                    codes::NOT_IMPLEMENTED
                ));
            }
            // SAFETY: ap_state_query only reads global state.
            if unsafe { ffi::ap_state_query(ffi::AP_SQ_CONFIG_GEN) } > 0 {
                // SAFETY: post_config runs in the single-threaded parent with the live pconf.
                unsafe { super::daemon::start_groups(pconf, s) };
            }
        }
        ffi::OK
    })
}

fn mpm_query(code: i32) -> i32 {
    let mut v: c_int = 0;
    // SAFETY: ap_mpm_query writes one int into our variable.
    unsafe { ffi::ap_mpm_query(code, &mut v) };
    v
}

/// First start: daemon groups are created here, after Apache detached from the terminal (so the
/// managers are children of the real parent) and before the MPM forks its children.
pub unsafe extern "C" fn pre_mpm(_p: *mut ffi::apr_pool_t, _sb: ffi::ap_scoreboard_e) -> c_int {
    guard("pre_mpm", ffi::OK, || {
        // SAFETY: ap_server_conf and its process record are valid in the parent after config.
        unsafe {
            let s = ffi::ap_server_conf;
            super::daemon::start_groups((*(*s).process).pconf, s);
        }
        ffi::OK
    })
}

unsafe extern "C" fn child_exit(_data: *mut libc::c_void) -> ffi::apr_status_t {
    guard("child exit", 0, || {
        interp::run_exit_hooks();
        0
    })
}

pub unsafe extern "C" fn child_init(p: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
    guard("child_init", (), || {
        log::install();
        super::daemon::close_listeners_in_child();
        let global = with_global(|g| g.clone());
        if global.restrict_embedded {
            return;
        }
        let info = ProcessInfo {
            multithread: mpm_query(ffi::AP_MPMQ_IS_THREADED) != 0,
            multiprocess: mpm_query(ffi::AP_MPMQ_MAX_DAEMONS) > 1,
            process_group: String::new(),
            apache_version: (
                ffi::AP_SERVER_MAJORVERSION_NUMBER as u32,
                ffi::AP_SERVER_MINORVERSION_NUMBER as u32,
                ffi::AP_SERVER_PATCHLEVEL_NUMBER as u32,
            ),
            maximum_processes: mpm_query(ffi::AP_MPMQ_MAX_DAEMONS).max(1) as u32,
            threads_per_process: mpm_query(ffi::AP_MPMQ_MAX_THREADS).max(1) as u32,
        };
        tracing::info!(target: "wsgi", "Initializing Python {} in process {} (embedded mode).", interp::python_version(), std::process::id());
        let opts = interp::InitOptions {
            python_home: global.python_home.clone(),
            python_path: global.python_path.clone(),
            process: Some(info),
        };
        // SAFETY: registering a cleanup on the live child pool; it runs when the child exits.
        unsafe { ffi::apr_pool_cleanup_register(p, std::ptr::null(), Some(child_exit), Some(ffi::apr_pool_cleanup_null)) };
        if let Err(e) = interp::initialize(&opts) {
            let hint = if global.python_home.is_some() {
                "; check that WSGIPythonHome names a Python 3.11 installation or virtualenv readable by the Apache user"
            } else {
                ""
            };
            log::log_server(s, ffi::APLOG_ERR, &format!("{}: cannot initialise Python in process {}: {e}{hint}", codes::PYTHON_INIT_FAILED, std::process::id()));
        } else {
            for imp in global.imports.iter().filter(|i| i.process_group == conf::GroupSpec::Global) {
                let group = conf::fixed_group_name(&imp.application_group);
                if let Err(e) = pool::enter(&group, |py| scripts::preload(py, &group, &imp.script)) {
                    log::log_server(s, ffi::APLOG_ERR, &format!("{e}; WSGIImportScript '{}' was not loaded", imp.script));
                }
            }
        }
    })
}

/// What translate_name found, kept for the handler (allocated in the request pool).
#[repr(C)]
struct Hit {
    alias: *const ScriptAlias,
    script: *const c_char,
    script_name: *const c_char,
    path_info: *const c_char,
}

unsafe fn pool_cstr(p: *mut ffi::apr_pool_t, bytes: &[u8]) -> *mut c_char {
    // SAFETY: copies the bytes into the pool and NUL-terminates.
    unsafe { ffi::apr_pstrmemdup(p, bytes.as_ptr().cast(), bytes.len()) }
}

pub unsafe extern "C" fn translate_name(r: *mut ffi::request_rec) -> c_int {
    guard("translate_name", ffi::DECLINED, || {
        // SAFETY: r is the live request; the server record outlives it.
        unsafe {
            if (*r).uri.is_null() {
                return ffi::DECLINED;
            }
            let c = cfg::server_cfg((*r).server);
            if c.settings.aliases.is_empty() {
                return ffi::DECLINED;
            }
            let uri = CStr::from_ptr((*r).uri).to_bytes();
            if uri.first() != Some(&b'/') {
                return ffi::DECLINED;
            }
            for (i, alias) in c.settings.aliases.iter().enumerate() {
                let (n, script) = if alias.regex {
                    let re = c.regexes.get(i).copied().unwrap_or(std::ptr::null_mut());
                    if re.is_null() {
                        continue;
                    }
                    let mut m = [ffi::ap_regmatch_t { rm_so: -1, rm_eo: -1 }; 10];
                    if ffi::ap_regexec(re, (*r).uri, m.len(), m.as_mut_ptr(), 0) != 0 {
                        continue;
                    }
                    let target = cstring(&alias.target);
                    let sub = ffi::ap_pregsub((*r).pool, target.as_ptr(), (*r).uri, m.len(), m.as_mut_ptr());
                    if sub.is_null() {
                        continue;
                    }
                    (m[0].rm_eo.max(0) as usize, sub as *const c_char)
                } else {
                    match conf::match_mount(&alias.url, uri) {
                        Some(n) => (n, pool_cstr((*r).pool, alias.target.as_bytes()) as *const c_char),
                        None => continue,
                    }
                };
                let n = n.min(uri.len());
                let hit = ffi::apr_palloc((*r).pool, std::mem::size_of::<Hit>()) as *mut Hit;
                hit.write(Hit {
                    alias,
                    script,
                    script_name: pool_cstr((*r).pool, &uri[..n]),
                    path_info: pool_cstr((*r).pool, &uri[n..]),
                });
                (*r).filename = script as *mut c_char;
                (*r).path_info = pool_cstr((*r).pool, &uri[n..]);
                (*r).handler = c"wsgi-script".as_ptr();
                ffi::apr_table_setn((*r).notes, c"alias-forced-type".as_ptr(), (*r).handler);
                ffi::ap_set_module_config((*r).request_config, &raw const super::module::wsgi_module, hit.cast());
                return ffi::OK;
            }
            ffi::DECLINED
        }
    })
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn table_get<'a>(t: *const ffi::apr_table_t, key: &CStr) -> Option<&'a [u8]> {
    // SAFETY: t is a live table of the current request; the value lives in its pool.
    unsafe {
        let v = ffi::apr_table_get(t, key.as_ptr());
        if v.is_null() { None } else { Some(CStr::from_ptr(v).to_bytes()) }
    }
}

fn c_bytes<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return b"";
    }
    // SAFETY: callers pass NUL-terminated strings from the live request's pool.
    unsafe { CStr::from_ptr(p).to_bytes() }
}

pub unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> c_int {
    guard("the WSGI handler", ffi::HTTP_INTERNAL_SERVER_ERROR, || {
        // SAFETY: r is the live request for the duration of the hook.
        unsafe { handle(r) }
    })
}

unsafe fn handle(r: *mut ffi::request_rec) -> c_int {
    // SAFETY (whole function): r is the live request; every pointer read from it lives in its
    // pool until the handler returns, which is after the Python call finishes.
    unsafe {
        let h = c_bytes((*r).handler);
        if !HANDLER_NAMES.contains(&h) {
            return ffi::DECLINED;
        }
        let hit = ffi::ap_get_module_config((*r).request_config, &raw const super::module::wsgi_module) as *const Hit;
        let hit = hit.as_ref();
        let script_c = match hit {
            Some(h) => h.script,
            None => (*r).filename,
        };
        let script = String::from_utf8_lossy(c_bytes(script_c)).into_owned();
        let ftype = (*r).finfo.filetype;
        if ftype == ffi::apr_filetype_e_APR_NOFILE || (hit.is_some() && c_bytes((*r).filename) != c_bytes(script_c)) {
            log::log_request(r, ffi::APLOG_ERR, &format!("{}: target WSGI script '{script}' does not exist; check the path in WSGIScriptAlias", codes::SCRIPT_MISSING));
            return ffi::HTTP_NOT_FOUND;
        }
        if ftype == ffi::apr_filetype_e_APR_DIR {
            if hit.is_none() {
                return ffi::DECLINED;
            }
            log::log_request(r, ffi::APLOG_ERR, &format!("{}: attempt to invoke directory '{script}' as a WSGI application; WSGIScriptAlias must name a script file", codes::SCRIPT_MISSING));
            return ffi::HTTP_FORBIDDEN;
        }
        if hit.is_none() && (ffi::ap_allow_options(r) & ffi::OPT_EXECCGI as i32) == 0 {
            log::log_request(r, ffi::APLOG_ERR, &format!("{}: Options ExecCGI is off in this directory: '{script}'; add 'Options +ExecCGI' to use AddHandler wsgi-script", codes::SCRIPT_MISSING));
            return ffi::HTTP_FORBIDDEN;
        }
        let default_dir = DirSettings::default();
        let dir = cfg::dir_cfg(r).unwrap_or(&default_dir);
        let eff = conf::effective(dir, hit.map(|h| &(*h.alias).options));

        let headers_in = (*r).headers_in;
        if table_get(headers_in, c"Transfer-Encoding").is_some() && !eff.chunked_request {
            log::log_request(r, ffi::APLOG_ERR, &format!("{}: chunked request body refused for '{script}'; add 'WSGIChunkedRequest On' to accept it", codes::CHUNKED_REFUSED));
            return ffi::HTTP_LENGTH_REQUIRED;
        }
        let limit = ffi::ap_get_limit_req_body(r);
        if limit > 0 {
            if let Some(cl) = table_get(headers_in, c"Content-Length").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<i64>().ok()) {
                if cl > limit {
                    return ffi::HTTP_REQUEST_ENTITY_TOO_LARGE;
                }
            }
        }
        // CGI variables: Apache's common set (HTTP_*, SERVER_*, REMOTE_*, DOCUMENT_ROOT, SetEnv
        // values, ...) plus the request line ones, with SCRIPT_NAME/PATH_INFO from the mount.
        ffi::ap_add_common_vars(r);
        let (script_name, path_info): (&[u8], &[u8]) = match hit {
            Some(h) => (c_bytes(h.script_name), c_bytes(h.path_info)),
            None => {
                let uri = c_bytes((*r).uri);
                let pi = c_bytes((*r).path_info);
                (&uri[..uri.len().saturating_sub(pi.len())], pi)
            }
        };
        let method: &[u8] = if eff.map_head_to_get == conf::MapHeadToGet::On && (*r).header_only != 0 { b"GET" } else { c_bytes((*r).method) };
        let mut cgi: Vec<(&str, &[u8])> = Vec::with_capacity(48);
        let env = ffi::apr_table_elts((*r).subprocess_env);
        let entries = std::slice::from_raw_parts((*env).elts as *const ffi::apr_table_entry_t, (*env).nelts.max(0) as usize);
        for e in entries {
            if e.key.is_null() {
                continue;
            }
            if let Ok(k) = std::str::from_utf8(c_bytes(e.key)) {
                // mod_wsgi does not pass the server's own PATH to applications.
                if k != "PATH" {
                    cgi.push((k, c_bytes(e.val)));
                }
            }
        }
        cgi.push(("GATEWAY_INTERFACE", b"CGI/1.1"));
        cgi.push(("SERVER_PROTOCOL", c_bytes((*r).protocol)));
        cgi.push(("REQUEST_METHOD", method));
        cgi.push(("QUERY_STRING", c_bytes((*r).args)));
        cgi.push(("REQUEST_URI", c_bytes((*r).unparsed_uri)));
        cgi.push(("SCRIPT_NAME", script_name));
        cgi.push(("PATH_INFO", path_info));
        // PATH_TRANSLATED as Apache's CGI support computes it: PATH_INFO mapped like a URL.
        let mut translated: Vec<u8> = Vec::new();
        if !path_info.is_empty() {
            let pi = cstring(&String::from_utf8_lossy(path_info));
            let esc = ffi::ap_os_escape_path((*r).pool, pi.as_ptr(), 1);
            let sub = ffi::ap_sub_req_lookup_uri(esc, r, std::ptr::null_mut());
            if !sub.is_null() {
                translated.extend_from_slice(c_bytes((*sub).filename));
                translated.extend_from_slice(c_bytes((*sub).path_info));
                ffi::ap_destroy_sub_req(sub);
            }
        }
        if !path_info.is_empty() {
            cgi.push(("PATH_TRANSLATED", c_bytes(pool_cstr((*r).pool, &translated))));
        }
        let conn = (*r).connection;
        let listener_port = pool_cstr((*r).pool, (*(*conn).local_addr).port.to_string().as_bytes());
        let request_start = pool_cstr((*r).pool, (*r).request_time.to_string().as_bytes());
        cgi.push(("mod_wsgi.enable_sendfile", if eff.enable_sendfile { b"1" } else { b"0" }));
        cgi.push(("mod_wsgi.listener_host", c_bytes((*conn).local_ip)));
        cgi.push(("mod_wsgi.listener_port", c_bytes(listener_port)));
        cgi.push(("mod_wsgi.path_info", path_info));
        cgi.push(("mod_wsgi.script_name", script_name));
        cgi.push(("mod_wsgi.request_handler", c_bytes((*r).handler)));
        cgi.push(("mod_wsgi.request_start", c_bytes(request_start)));
        if eff.pass_authorization {
            if let Some(auth) = table_get(headers_in, c"Authorization") {
                cgi.push(("HTTP_AUTHORIZATION", auth));
            }
        }
        // mod_wsgi names groups after the server's ServerName, not the Host header.
        let server_name = String::from_utf8_lossy(c_bytes((*(*r).server).server_hostname)).into_owned();
        let port = ffi::ap_get_server_port(r);
        let script_name_str = String::from_utf8_lossy(script_name).into_owned();
        let env_lookup = |k: &str| -> Option<String> {
            let key = cstring(k);
            table_get((*r).subprocess_env, &key).map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let app_group = conf::application_group_name(&eff.application_group, &server_name, port, &script_name_str, env_lookup);
        let callable = eff.callable_object.clone();
        let scheme = String::from_utf8_lossy(c_bytes(ffi::ap_run_http_scheme(r))).into_owned();
        let request_id = format!("{:x}.{:x}", std::process::id(), REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed));
        let mtime = (*r).finfo.mtime;

        let call = wsgi::Call {
            cgi: &cgi,
            info: RequestInfo {
                url_scheme: if scheme.is_empty() { "http" } else { &scheme },
                application_group: &app_group,
                callable_object: &callable,
                script_reloading: eff.script_reloading,
                request_id: &request_id,
            },
            script: &script,
        };
        let group = match &eff.process_group {
            conf::GroupSpec::Global => String::new(),
            spec => conf::process_group_name(spec, &server_name, port, &script_name_str, |k: &str| {
                let key = cstring(k);
                table_get((*r).subprocess_env, &key).map(|v| String::from_utf8_lossy(v).into_owned())
            }),
        };
        if !group.is_empty() {
            let Some(rt) = super::daemon::find(&group) else {
                if super::daemon::is_broken(&group) {
                    log::log_request(r, ffi::APLOG_ERR, &format!("{}: daemon process group '{group}' is not running because it failed to start (see the WR0121 line at startup); returning 503", codes::DAEMON_UNAVAILABLE));
                    return ffi::HTTP_SERVICE_UNAVAILABLE;
                }
                log::log_request(r, ffi::APLOG_ERR, &format!("{}: WSGIProcessGroup '{group}' names no WSGIDaemonProcess group of this server; define it with WSGIDaemonProcess or fix the name (script '{script}')", codes::UNKNOWN_PROCESS_GROUP));
                return ffi::HTTP_INTERNAL_SERVER_ERROR;
            };
            let client = format!("{}:{}", String::from_utf8_lossy(c_bytes((*r).useragent_ip)), if (*r).useragent_addr.is_null() { 0 } else { (*(*r).useragent_addr).port });
            let req = crate::protocol::RequestRef {
                script: &script,
                callable: &callable,
                application_group: &app_group,
                script_reloading: eff.script_reloading,
                mtime,
                header_only: (*r).header_only != 0,
                url_scheme: call.info.url_scheme,
                request_id: &request_id,
                client: &client,
                cgi: &cgi,
            };
            let mut io = ApacheIo::new(r, eff.enable_sendfile);
            let overridden = eff.error_override.then(|| io.override_errors());
            let timeout = std::time::Duration::from_micros((*(*r).server).timeout.max(0) as u64);
            let status = super::proxy::forward(&rt, &req, &mut io, timeout);
            if let Some(code) = overridden.map(|o| o.load(std::sync::atomic::Ordering::Relaxed)).filter(|c| *c != 0) {
                return code as c_int;
            }
            return status;
        }
        match interp::status() {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                log::log_request(r, ffi::APLOG_ERR, &format!("{}: Python is not available in this process: {e}", codes::PYTHON_INIT_FAILED));
                return ffi::HTTP_INTERNAL_SERVER_ERROR;
            }
            None => {
                log::log_request(r, ffi::APLOG_ERR, &format!("{}: Python was not initialised in this process (WSGIRestrictEmbedded On?)", codes::PYTHON_INIT_FAILED));
                return ffi::HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        let mut finishing: Option<Box<dyn wsgi::RequestIo>> = None;
        let mut overridden: Option<std::sync::Arc<std::sync::atomic::AtomicU16>> = None;
        let entered = pool::enter(&app_group, |py| {
            let app = match scripts::application(py, &app_group, &script, mtime, eff.script_reloading, &callable) {
                Ok(app) => app,
                Err(scripts::LoadError::Failed(lines)) => {
                    for l in lines {
                        log::log_request(r, ffi::APLOG_ERR, &l);
                    }
                    return wsgi::Outcome::Failed;
                }
                Err(scripts::LoadError::NoCallable(msg)) => {
                    log::log_request(r, ffi::APLOG_ERR, &msg);
                    return wsgi::Outcome::Failed;
                }
            };
            let mut io = ApacheIo::new(r, eff.enable_sendfile);
            if eff.error_override {
                overridden = Some(io.override_errors());
            }
            let (outcome, io) = wsgi::serve(py, &app, &call, Box::new(io));
            finishing = io;
            outcome
        });
        let outcome = match entered {
            Ok(o) => o,
            Err(e) => {
                log::log_request(r, ffi::APLOG_ERR, &e);
                wsgi::Outcome::Failed
            }
        };
        if outcome == wsgi::Outcome::Complete {
            if let Some(mut io) = finishing {
                let _ = io.finish();
            }
            if let Some(code) = overridden.map(|o| o.load(std::sync::atomic::Ordering::Relaxed)).filter(|c| *c != 0) {
                return code as c_int;
            }
        }
        match outcome {
            wsgi::Outcome::Failed => ffi::HTTP_INTERNAL_SERVER_ERROR,
            _ => ffi::OK,
        }
    }
}
