//! The request handler: check the target, build the CGI set, then run the application in a
//! daemon process group ([`execute_remote`]) or in this Apache child ([`execute_embedded`]).

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
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

/// This Apache child's pid, set by `child_init` (getpid is a system call each time).
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Records this process's pid; called in each Apache child as it starts.
pub fn note_process_id() {
    PID.store(std::process::id(), Ordering::Relaxed);
}

fn process_id() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => std::process::id(),
        pid => pid,
    }
}

/// WSGIRestrictEmbedded On in this process: no application runs in the Apache child (Python may
/// still be there for auth, access and dispatch scripts).
pub static EMBEDDED_RESTRICTED: AtomicBool = AtomicBool::new(false);

pub unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> c_int {
    guard("the WSGI handler", ffi::HTTP_INTERNAL_SERVER_ERROR, || {
        // SAFETY: r is the live request for the duration of the hook, and the view is dropped
        // before the hook returns.
        let req = unsafe { Request::from_raw(r) };
        handle(&req)
    })
}

fn handle(req: &Request<'_>) -> c_int {
    // A WSGIHandlerScript serves the Apache handler it names; otherwise the handler must be
    // wsgi-script (WSGIScriptAlias, AddHandler).
    let handler_script = if HANDLER_NAMES.contains(&req.handler()) {
        None
    } else {
        match req.handler_script() {
            Some(h) => Some(h),
            None => return ffi::DECLINED,
        }
    };
    let default_dir = DirSettings::default();
    let dir = req.dir_settings().unwrap_or(&default_dir);
    let mount = req.mount();
    let options = handler_script.map(|h| &h.options).or(mount.as_ref().map(|m| &m.alias.options));
    let mut eff = conf::effective(dir, options);
    if handler_script.is_some_and(|h| h.options.callable_object.is_none()) {
        eff.callable_object = "handle_request".to_string();
    }
    let script = match check_target(req, &eff, handler_script) {
        Ok(s) => s,
        Err(status) => return status,
    };
    // The script's own modification time (for a handler script, not the requested file's).
    let mtime = match handler_script {
        Some(h) => crate::python::scripts::file_mtime(&h.script).unwrap_or(0),
        None => req.mtime(),
    };
    let mut cgi = build_environment(req, &eff, true);
    if let Some(h) = handler_script {
        cgi.vars.push(("mod_wsgi.handler_script", req.pool_bytes(h.script.as_bytes())));
    }
    let mut names = Names::of(req, &eff, &cgi);
    if let Some(d) = &dir.dispatch_script {
        if dispatch(req, d, &cgi, &mut eff, &mut names).is_err() {
            return ffi::HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if let Some(allowed) = &dir.restrict_process {
        if !allowed.contains(&names.process_group) {
            let shown = if names.process_group.is_empty() { "%{GLOBAL}" } else { names.process_group.as_str() };
            req.log(ffi::APLOG_ERR, &format!(
                "{}: process group '{shown}' is not allowed for '{script}' by WSGIRestrictProcess (allowed: {}); add it there or choose another WSGIProcessGroup",
                codes::PROCESS_RESTRICTED,
                allowed.iter().map(|g| if g.is_empty() { "%{GLOBAL}" } else { g.as_str() }).collect::<Vec<_>>().join(" ")
            ));
            return ffi::HTTP_FORBIDDEN;
        }
    }
    let request_id = format!("{:x}.{:x}", process_id(), REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed));
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
        timing: wsgi::Timing { request_start: req.request_time(), server_pid: process_id(), ..wsgi::Timing::default() },
    };
    if names.process_group.is_empty() {
        execute_embedded(req, &eff, &call, mtime)
    } else {
        execute_remote(req, &eff, &call, &names.process_group, mtime)
    }
}

/// The script file must exist and be a file (with ExecCGI where a handler maps it), the body
/// must be acceptable. Returns the script path, or the status to answer with. A handler
/// script serves whatever URL its handler is set for: the requested file need not exist.
fn check_target(req: &Request<'_>, eff: &Effective, handler_script: Option<&conf::HandlerScript>) -> Result<String, c_int> {
    check_body(req, eff)?;
    if let Some(h) = handler_script {
        return Ok(h.script.clone());
    }
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
    Ok(script)
}

/// The request body must be acceptable: chunked only with WSGIChunkedRequest On, and within
/// LimitRequestBody.
fn check_body(req: &Request<'_>, eff: &Effective) -> Result<(), c_int> {
    if req.header_in("Transfer-Encoding").is_some() && !eff.chunked_request {
        req.log(ffi::APLOG_ERR, &format!(
            "{}: chunked request body refused for '{}'; add 'WSGIChunkedRequest On' to accept it",
            codes::CHUNKED_REFUSED,
            String::from_utf8_lossy(req.uri())
        ));
        return Err(ffi::HTTP_LENGTH_REQUIRED);
    }
    let limit = req.limit_request_body();
    if limit > 0 {
        let length = req.header_in("Content-Length").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<i64>().ok());
        if length.is_some_and(|cl| cl > limit) {
            return Err(ffi::HTTP_REQUEST_ENTITY_TOO_LARGE);
        }
    }
    Ok(())
}

/// The CGI variables of a request, borrowed from the request's pool.
pub(super) struct Environment<'r> {
    pub(super) vars: Vec<(&'r str, &'r [u8])>,
    /// SCRIPT_NAME as the mount gave it (before any trusted proxy header).
    pub(super) script_name: &'r [u8],
    pub(super) url_scheme: &'static str,
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
/// `mod_wsgi.*` values that come from Apache. `path_translated`: also PATH_TRANSLATED (a
/// sub-request maps PATH_INFO to a file).
pub(super) fn build_environment<'r>(req: &Request<'r>, eff: &Effective, path_translated: bool) -> Environment<'r> {
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
    if path_translated && !path_info.is_empty() {
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
        Names {
            process_group: process_group_name(req, &eff.process_group, cgi.script_name),
            application_group: group_name(req, &eff.application_group, cgi.script_name),
        }
    }
}

/// The application group (interpreter) `spec` names for this request. mod_wsgi names groups
/// after the server's ServerName, not the Host header.
pub(super) fn group_name(req: &Request<'_>, spec: &conf::GroupSpec, script_name: &[u8]) -> String {
    let (server_name, script_name) = name_parts(req, script_name);
    conf::application_group_name(spec, &server_name, req.server_port(), &script_name, |k| env_text(req, k))
}

/// ServerName and SCRIPT_NAME as text, which group names are made of.
fn name_parts<'a>(req: &'a Request<'_>, script_name: &'a [u8]) -> (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>) {
    (String::from_utf8_lossy(req.server_name()), String::from_utf8_lossy(script_name))
}

/// A variable of the request's environment as text (for `%{ENV:NAME}`).
fn env_text(req: &Request<'_>, name: &str) -> Option<String> {
    req.env(name).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The daemon process group `spec` names for this request (`""`: this Apache child).
fn process_group_name(req: &Request<'_>, spec: &conf::GroupSpec, script_name: &[u8]) -> String {
    if *spec == conf::GroupSpec::Global {
        return String::new();
    }
    let (server_name, script_name) = name_parts(req, script_name);
    conf::process_group_name(spec, &server_name, req.server_port(), &script_name, |k| env_text(req, k))
}

/// WSGIDispatchScript: the script's `process_group`, `application_group` and `callable_object`
/// functions may replace what the configuration chose. A returned value is read like the
/// directive's argument (`%{GLOBAL}`, `%{ENV:NAME}`, ...; `''` is `%{GLOBAL}`). `Err`: logged,
/// answer 500.
fn dispatch(req: &Request<'_>, script: &conf::HookScript, cgi: &Environment<'_>, eff: &mut Effective, names: &mut Names) -> Result<(), ()> {
    let group = group_name(req, script.application_group.as_ref().unwrap_or(&conf::GroupSpec::Global), cgi.script_name);
    let call = wsgi::hooks::HookCall { directive: "WSGIDispatchScript", script: &script.script, group: &group, cgi: &cgi.vars, url_scheme: cgi.url_scheme };
    let chosen = match pool::enter(&group, |py| wsgi::hooks::dispatch(py, &call)) {
        Ok(Ok(d)) => d,
        Ok(Err(lines)) => {
            for l in lines {
                req.log(ffi::APLOG_ERR, &l);
            }
            return Err(());
        }
        Err(e) => {
            req.log(ffi::APLOG_ERR, &format!("{}: WSGIDispatchScript '{}': {e}", codes::HOOK_SCRIPT_FAILED, script.script));
            return Err(());
        }
    };
    let spec = |value: &str, parse: fn(&str) -> Result<conf::GroupSpec, String>, what: &str| -> Result<conf::GroupSpec, ()> {
        if value.is_empty() {
            return Ok(conf::GroupSpec::Global);
        }
        parse(value).map_err(|e| {
            req.log(ffi::APLOG_ERR, &format!("{}: {what}() in WSGIDispatchScript '{}' returned '{value}': {e}", codes::HOOK_SCRIPT_FAILED, script.script));
        })
    };
    if let Some(v) = chosen.process_group {
        names.process_group = process_group_name(req, &spec(&v, conf::parse_process_group, "process_group")?, cgi.script_name);
    }
    if let Some(v) = chosen.application_group {
        names.application_group = group_name(req, &spec(&v, conf::parse_application_group, "application_group")?, cgi.script_name);
    }
    if let Some(v) = chosen.callable_object {
        eff.callable_object = v;
    }
    Ok(())
}

/// The status Apache should render when WSGIErrorOverride took over the application's error.
fn overridden_status(flag: Option<Arc<AtomicU16>>) -> Option<c_int> {
    flag.map(|o| o.load(Ordering::Relaxed)).filter(|c| *c != 0).map(c_int::from)
}

/// Daemon mode: hands the request to the group's processes and relays the answer.
fn execute_remote(req: &Request<'_>, eff: &Effective, call: &wsgi::Call<'_>, group: &str, mtime: i64) -> c_int {
    let Some(rt) = super::daemon::find(group) else {
        if super::daemon::is_broken(group) {
            req.log(ffi::APLOG_ERR, &format!("{}: daemon process group '{group}' is not running because it failed to start (see the WR0121 line at startup); returning 503", codes::DAEMON_UNAVAILABLE));
            return ffi::HTTP_SERVICE_UNAVAILABLE;
        }
        req.log(ffi::APLOG_ERR, &format!("{}: WSGIProcessGroup '{group}' names no WSGIDaemonProcess group of this server; define it with WSGIDaemonProcess or fix the name (script '{}')", codes::UNKNOWN_PROCESS_GROUP, call.script));
        return ffi::HTTP_INTERNAL_SERVER_ERROR;
    };
    if let Err(why) = script_owner_allowed(call.script, rt.script_uid, rt.script_gid) {
        req.log(ffi::APLOG_ERR, &format!("{}: '{}' may not run in daemon process group '{group}': {why}", codes::SCRIPT_OWNER_REFUSED, call.script));
        return ffi::HTTP_FORBIDDEN;
    }
    let client = req.client();
    let wire = crate::protocol::RequestRef {
        script: call.script,
        callable: call.info.callable_object,
        application_group: call.info.application_group,
        script_reloading: eff.script_reloading,
        mtime,
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

/// script-user= / script-group=: the script file must have that owner / group.
fn script_owner_allowed(script: &str, uid: Option<u32>, gid: Option<u32>) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    let m = std::fs::metadata(script).map_err(|e| format!("cannot read its owner: {e}"))?;
    if let Some(u) = uid.filter(|u| *u != m.uid()) {
        return Err(format!("it is owned by uid {}, and script-user= requires uid {u}", m.uid()));
    }
    if let Some(g) = gid.filter(|g| *g != m.gid()) {
        return Err(format!("its group is gid {}, and script-group= requires gid {g}", m.gid()));
    }
    Ok(())
}

/// Embedded mode: runs the application in this process, in its application group's interpreter.
fn execute_embedded(req: &Request<'_>, eff: &Effective, call: &wsgi::Call<'_>, mtime: i64) -> c_int {
    if EMBEDDED_RESTRICTED.load(Ordering::Relaxed) {
        req.log(ffi::APLOG_ERR, &format!(
            "{}: WSGIRestrictEmbedded is On, so '{}' cannot run in the Apache child; set WSGIProcessGroup (or process-group=) to a WSGIDaemonProcess group",
            codes::EMBEDDED_RESTRICTED, call.script
        ));
        return ffi::HTTP_INTERNAL_SERVER_ERROR;
    }
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
        let app = match scripts::application(py, group, call.script, mtime, eff.script_reloading, call.info.callable_object) {
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
