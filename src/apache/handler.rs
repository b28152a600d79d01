//! The request handler: check the target, build the CGI set, then run the application in a
//! daemon process group ([`execute_remote`]) or in this Apache child ([`execute_embedded`]).

use std::ffi::c_int;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

use super::ffi;
use super::hooks::guard;
use super::request::{FileType, Request};
use super::request_io::ApacheIo;
use crate::codes;
use crate::config::{self as conf, DirSettings, Effective};
use crate::python::{interp, pool, scripts};
use crate::wsgi::{self, environ::RequestInfo};

const HANDLER_NAMES: [&[u8]; 2] = [b"wsgi-script", b"application/x-httpd-wsgi"];

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

pub unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> c_int {
    guard("the WSGI handler", ffi::HTTP_INTERNAL_SERVER_ERROR, || {
        // SAFETY: r is the live request for the duration of the hook, and the view is dropped
        // before the hook returns.
        let req = unsafe { Request::from_raw(r) };
        handle(&req)
    })
}

fn handle(req: &Request<'_>) -> c_int {
    if !HANDLER_NAMES.contains(&req.handler()) {
        return ffi::DECLINED;
    }
    let default_dir = DirSettings::default();
    let dir = req.dir_settings().unwrap_or(&default_dir);
    let mount = req.mount();
    let eff = conf::effective(dir, mount.as_ref().map(|m| &m.alias.options));
    let script = match check_target(req, &eff) {
        Ok(s) => s,
        Err(status) => return status,
    };
    let cgi = build_environment(req, &eff);
    let names = Names::of(req, &eff, &cgi);
    let request_id = format!("{:x}.{:x}", std::process::id(), REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed));
    let call = wsgi::Call {
        cgi: &cgi.vars,
        info: RequestInfo {
            url_scheme: cgi.url_scheme,
            application_group: &names.application_group,
            callable_object: &eff.callable_object,
            script_reloading: eff.script_reloading,
            request_id: &request_id,
        },
        script: &script,
        timing: wsgi::Timing { request_start: req.request_time(), server_pid: std::process::id(), ..wsgi::Timing::default() },
    };
    if names.process_group.is_empty() {
        execute_embedded(req, &eff, &call)
    } else {
        execute_remote(req, &eff, &call, &names.process_group)
    }
}

/// The script file must exist and be a file (with ExecCGI where a handler maps it), the body
/// must be acceptable. Returns the script path, or the status to answer with.
fn check_target(req: &Request<'_>, eff: &Effective) -> Result<String, c_int> {
    let mount = req.mount();
    let script_bytes = mount.as_ref().map_or(req.filename(), |m| m.script);
    let script = String::from_utf8_lossy(script_bytes).into_owned();
    let ftype = req.file_type();
    if ftype == FileType::Missing || (mount.is_some() && req.filename() != script_bytes) {
        req.log(ffi::APLOG_ERR, &format!("{}: target WSGI script '{script}' does not exist; check the path in WSGIScriptAlias", codes::SCRIPT_MISSING));
        return Err(ffi::HTTP_NOT_FOUND);
    }
    if ftype == FileType::Directory {
        if mount.is_none() {
            return Err(ffi::DECLINED);
        }
        req.log(ffi::APLOG_ERR, &format!("{}: attempt to invoke directory '{script}' as a WSGI application; WSGIScriptAlias must name a script file", codes::DIRECTORY_TARGET));
        return Err(ffi::HTTP_FORBIDDEN);
    }
    if mount.is_none() && !req.allows_exec_cgi() {
        req.log(ffi::APLOG_ERR, &format!("{}: Options ExecCGI is off in this directory: '{script}'; add 'Options +ExecCGI' to use AddHandler wsgi-script", codes::EXEC_CGI_OFF));
        return Err(ffi::HTTP_FORBIDDEN);
    }
    if req.header_in("Transfer-Encoding").is_some() && !eff.chunked_request {
        req.log(ffi::APLOG_ERR, &format!("{}: chunked request body refused for '{script}'; add 'WSGIChunkedRequest On' to accept it", codes::CHUNKED_REFUSED));
        return Err(ffi::HTTP_LENGTH_REQUIRED);
    }
    let limit = req.limit_request_body();
    if limit > 0 {
        let length = req.header_in("Content-Length").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<i64>().ok());
        if length.is_some_and(|cl| cl > limit) {
            return Err(ffi::HTTP_REQUEST_ENTITY_TOO_LARGE);
        }
    }
    Ok(script)
}

/// The CGI variables of a request, borrowed from the request's pool.
struct Environment<'r> {
    vars: Vec<(&'r str, &'r [u8])>,
    /// SCRIPT_NAME as the mount gave it (before any trusted proxy header).
    script_name: &'r [u8],
    url_scheme: &'static str,
}

/// The CGI variables as trusted proxy processing edits them: new values go into the request
/// pool.
struct PoolVars<'a, 'r> {
    req: &'a Request<'r>,
    vars: &'a mut Vec<(&'r str, &'r [u8])>,
}

impl conf::proxy::CgiVars for PoolVars<'_, '_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.vars.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
    fn set(&mut self, name: &'static str, value: Vec<u8>) {
        self.remove(name);
        let v = self.req.pool_bytes(&value);
        self.vars.push((name, v));
    }
    fn remove(&mut self, name: &str) {
        self.vars.retain(|(k, _)| *k != name);
    }
}

/// CGI variables: Apache's common set (HTTP_*, SERVER_*, REMOTE_*, DOCUMENT_ROOT, SetEnv
/// values, ...) plus the request line ones, with SCRIPT_NAME/PATH_INFO from the mount, and the
/// `mod_wsgi.*` values that come from Apache.
fn build_environment<'r>(req: &Request<'r>, eff: &Effective) -> Environment<'r> {
    req.add_common_vars();
    let (raw_script_name, raw_path_info): (&[u8], &[u8]) = match req.mount() {
        Some(m) => (m.script_name, m.path_info),
        None => {
            let (uri, pi) = (req.uri(), req.path_info());
            (&uri[..uri.len().saturating_sub(pi.len())], pi)
        }
    };
    // As mod_wsgi: runs of slashes (kept by `MergeSlashes Off`) collapse to one.
    let collapsed = |b: &'r [u8]| conf::collapse_slashes(b).map_or(b, |c| req.pool_bytes(&c));
    let (script_name, path_info) = (collapsed(raw_script_name), collapsed(raw_path_info));
    let method: &[u8] = if eff.map_head_to_get == conf::MapHeadToGet::On && req.header_only() { b"GET" } else { req.method() };
    let mut cgi: Vec<(&str, &[u8])> = Vec::with_capacity(48);
    for (k, v) in req.env_entries() {
        // As mod_wsgi: not the server's own PATH.
        if let Ok(k) = std::str::from_utf8(k) {
            if k != "PATH" {
                cgi.push((k, v));
            }
        }
    }
    cgi.push(("GATEWAY_INTERFACE", b"CGI/1.1"));
    cgi.push(("SERVER_PROTOCOL", req.protocol()));
    cgi.push(("REQUEST_METHOD", method));
    cgi.push(("QUERY_STRING", req.query_string()));
    cgi.push(("REQUEST_URI", req.unparsed_uri()));
    cgi.push(("SCRIPT_NAME", script_name));
    cgi.push(("PATH_INFO", path_info));
    // PATH_TRANSLATED as Apache's CGI support computes it: PATH_INFO mapped like a URL.
    if !path_info.is_empty() {
        cgi.push(("PATH_TRANSLATED", req.pool_bytes(&req.translate_path(path_info))));
    }
    cgi.push(("mod_wsgi.enable_sendfile", if eff.enable_sendfile { b"1" } else { b"0" }));
    cgi.push(("mod_wsgi.listener_host", req.local_ip()));
    cgi.push(("mod_wsgi.listener_port", req.pool_bytes(req.local_port().to_string().as_bytes())));
    cgi.push(("mod_wsgi.path_info", path_info));
    cgi.push(("mod_wsgi.script_name", script_name));
    cgi.push(("mod_wsgi.request_handler", req.handler()));
    cgi.push(("mod_wsgi.request_start", req.pool_bytes(req.request_time().to_string().as_bytes())));
    if eff.pass_authorization {
        if let Some(auth) = req.header_in("Authorization") {
            cgi.push(("HTTP_AUTHORIZATION", auth));
        }
    }
    // Trusted proxy headers (WSGITrustedProxyHeaders / WSGITrustedProxies) rewrite
    // REMOTE_ADDR, HTTP_HOST, SCRIPT_NAME, HTTPS, ... for a trusted peer and are dropped from
    // an untrusted one. Then, as mod_wsgi: HTTPS=on/1 (mod_ssl, SetEnv, a trusted proxy)
    // decides wsgi.url_scheme, and HTTPS itself is not passed on.
    let connection_https = req.scheme().eq_ignore_ascii_case(b"https");
    let url_scheme = if eff.trusted_proxy_headers.is_empty() {
        let on = cgi.iter().any(|(k, v)| *k == "HTTPS" && (v.eq_ignore_ascii_case(b"on") || *v == b"1"));
        if on || connection_https { "https" } else { "http" }
    } else {
        let peer = String::from_utf8_lossy(req.client_ip()).into_owned();
        let mut vars = PoolVars { req, vars: &mut cgi };
        let outcome = conf::proxy::process_proxy_headers(&eff.trusted_proxy_headers, eff.trusted_proxies.as_ref(), &peer, &mut vars);
        outcome.url_scheme(conf::proxy::CgiVars::get(&vars, "HTTPS"), connection_https)
    };
    cgi.retain(|(k, _)| *k != "HTTPS");
    Environment { vars: cgi, script_name, url_scheme }
}

/// The process group (`""`: this Apache child) and application group of a request.
struct Names {
    process_group: String,
    application_group: String,
}

impl Names {
    fn of(req: &Request<'_>, eff: &Effective, cgi: &Environment<'_>) -> Names {
        // mod_wsgi names groups after the server's ServerName, not the Host header.
        let server_name = String::from_utf8_lossy(req.server_name()).into_owned();
        let port = req.server_port();
        let script_name = String::from_utf8_lossy(cgi.script_name).into_owned();
        let env = |k: &str| req.env(k).map(|v| String::from_utf8_lossy(v).into_owned());
        let application_group = conf::application_group_name(&eff.application_group, &server_name, port, &script_name, env);
        let process_group = match &eff.process_group {
            conf::GroupSpec::Global => String::new(),
            spec => conf::process_group_name(spec, &server_name, port, &script_name, env),
        };
        Names { process_group, application_group }
    }
}

/// The status Apache should render when WSGIErrorOverride took over the application's error.
fn overridden_status(flag: Option<Arc<AtomicU16>>) -> Option<c_int> {
    flag.map(|o| o.load(Ordering::Relaxed)).filter(|c| *c != 0).map(c_int::from)
}

/// Daemon mode: hands the request to the group's processes and relays the answer.
fn execute_remote(req: &Request<'_>, eff: &Effective, call: &wsgi::Call<'_>, group: &str) -> c_int {
    let Some(rt) = super::daemon::find(group) else {
        if super::daemon::is_broken(group) {
            req.log(ffi::APLOG_ERR, &format!("{}: daemon process group '{group}' is not running because it failed to start (see the WR0121 line at startup); returning 503", codes::DAEMON_UNAVAILABLE));
            return ffi::HTTP_SERVICE_UNAVAILABLE;
        }
        req.log(ffi::APLOG_ERR, &format!("{}: WSGIProcessGroup '{group}' names no WSGIDaemonProcess group of this server; define it with WSGIDaemonProcess or fix the name (script '{}')", codes::UNKNOWN_PROCESS_GROUP, call.script));
        return ffi::HTTP_INTERNAL_SERVER_ERROR;
    };
    let client = req.client();
    let wire = crate::protocol::RequestRef {
        script: call.script,
        callable: call.info.callable_object,
        application_group: call.info.application_group,
        script_reloading: eff.script_reloading,
        mtime: req.mtime(),
        header_only: req.header_only(),
        url_scheme: call.info.url_scheme,
        request_id: call.info.request_id,
        queue_start: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64),
        client: &client,
        cgi: call.cgi,
    };
    // SAFETY: the request is live until the handler returns, after `forward` finishes with io.
    let mut io = unsafe { ApacheIo::new(req.raw(), eff.enable_sendfile) };
    let overridden = eff.error_override.then(|| io.override_errors());
    let status = super::proxy::forward(&rt, &wire, &mut io, req.server_timeout());
    overridden_status(overridden).unwrap_or(status)
}

/// Embedded mode: runs the application in this process, in its application group's interpreter.
fn execute_embedded(req: &Request<'_>, eff: &Effective, call: &wsgi::Call<'_>) -> c_int {
    match interp::status() {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            req.log(ffi::APLOG_ERR, &format!("{}: Python is not available in this process: {e}", codes::PYTHON_INIT_FAILED));
            return ffi::HTTP_INTERNAL_SERVER_ERROR;
        }
        None => {
            req.log(ffi::APLOG_ERR, &format!("{}: Python was not initialised in this process (WSGIRestrictEmbedded On?)", codes::PYTHON_INIT_FAILED));
            return ffi::HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    let group = call.info.application_group;
    let mut finishing: Option<Box<dyn wsgi::RequestIo>> = None;
    let mut overridden: Option<Arc<AtomicU16>> = None;
    let entered = pool::enter(group, |py| {
        let app = match scripts::application(py, group, call.script, req.mtime(), eff.script_reloading, call.info.callable_object) {
            Ok(app) => app,
            Err(scripts::LoadError::Failed(lines)) => {
                for l in lines {
                    req.log(ffi::APLOG_ERR, &l);
                }
                return wsgi::Outcome::Failed;
            }
            Err(scripts::LoadError::NoCallable(msg)) => {
                req.log(ffi::APLOG_ERR, &msg);
                return wsgi::Outcome::Failed;
            }
        };
        // SAFETY: the request is live until the handler returns; `serve` hands the I/O object
        // back (or drops it) before returning.
        let mut io = unsafe { ApacheIo::new(req.raw(), eff.enable_sendfile) };
        if eff.error_override {
            overridden = Some(io.override_errors());
        }
        let (outcome, io) = wsgi::serve(py, &app, call, Box::new(io));
        finishing = io;
        outcome
    });
    let outcome = entered.unwrap_or_else(|e| {
        req.log(ffi::APLOG_ERR, &e);
        wsgi::Outcome::Failed
    });
    match outcome {
        wsgi::Outcome::Complete => {
            // Outside Python: the response is ended without the GIL.
            if let Some(mut io) = finishing {
                let _ = io.finish();
            }
            overridden_status(overridden).unwrap_or(ffi::OK)
        }
        wsgi::Outcome::Failed => ffi::HTTP_INTERNAL_SERVER_ERROR,
        wsgi::Outcome::TimedOut => ffi::HTTP_GATEWAY_TIME_OUT,
        wsgi::Outcome::BodyTimedOut => ffi::HTTP_REQUEST_TIME_OUT,
        _ => ffi::OK,
    }
}
