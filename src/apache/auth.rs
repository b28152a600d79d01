//! Apache's access and authentication phases served by script functions: the authn provider
//! `wsgi` (WSGIAuthUserScript), the authz provider `wsgi-group` (WSGIAuthGroupScript) and the
//! access checker (WSGIAccessScript). The scripts run in this Apache child, in the interpreter
//! of their `application-group=` (default `%{GLOBAL}`), as in mod_wsgi; what each function must
//! return is in `crate::wsgi::hooks`.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::null;

use pyo3::Python;

use super::ffi;
use super::handler;
use super::hooks::guard;
use super::request::Request;
use crate::codes;
use crate::config::{self as conf, DirSettings, HookScript};
use crate::python::{interp, pool};
use crate::wsgi::hooks::{self as py_hooks, Failure, HookCall};

static AUTHN: ffi::authn_provider = ffi::authn_provider {
    check_password: Some(check_password),
    get_realm_hash: Some(get_realm_hash),
};

static AUTHZ_GROUP: ffi::authz_provider = ffi::authz_provider {
    check_authorization: Some(check_group),
    parse_require_line: None,
};

/// Registers the providers and the access checker (from `register_hooks`).
///
/// # Safety
/// `p` is the pool Apache passes to `register_hooks`.
pub unsafe fn register(p: *mut ffi::apr_pool_t) {
    // SAFETY: the provider records are statics (they outlive every pool); the group, name and
    // version strings are static C strings.
    unsafe {
        ffi::ap_register_auth_provider(
            p,
            ffi::AUTHN_PROVIDER_GROUP.as_ptr().cast(),
            c"wsgi".as_ptr(),
            ffi::AUTHN_PROVIDER_VERSION.as_ptr().cast(),
            (&raw const AUTHN).cast(),
            ffi::AP_AUTH_INTERNAL_PER_CONF as c_int,
        );
        ffi::ap_register_auth_provider(
            p,
            ffi::AUTHZ_PROVIDER_GROUP.as_ptr().cast(),
            c"wsgi-group".as_ptr(),
            ffi::AUTHZ_PROVIDER_VERSION.as_ptr().cast(),
            (&raw const AUTHZ_GROUP).cast(),
            ffi::AP_AUTH_INTERNAL_PER_CONF as c_int,
        );
        ffi::ap_hook_check_access(Some(access_checker), null(), null(), ffi::APR_HOOK_MIDDLE, ffi::AP_AUTH_INTERNAL_PER_CONF as c_int);
    }
}

/// Calls a script function for request `req`: builds the request's CGI variables, enters the
/// script's interpreter and runs `f`. A failure is logged here (`Err(())`: answer 500).
fn run<T>(
    req: &Request<'_>,
    directive: &str,
    script: &HookScript,
    f: impl FnOnce(Python<'_>, &HookCall<'_>) -> Result<T, Failure>,
) -> Result<T, ()> {
    match interp::status() {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            req.log(ffi::APLOG_ERR, &format!("{}: {directive} '{}' cannot run: Python is not available in this process: {e}", codes::PYTHON_INIT_FAILED, script.script));
            return Err(());
        }
        None => {
            req.log(ffi::APLOG_ERR, &format!(
                "{}: {directive} '{}' cannot run: Python was not initialised in this process (with WSGIRestrictEmbedded On it starts in Apache's children only when the server configuration, not an .htaccess file, names an auth, access or dispatch script)",
                codes::PYTHON_INIT_FAILED, script.script
            ));
            return Err(());
        }
    }
    let default_dir = DirSettings::default();
    let dir = req.dir_settings().unwrap_or(&default_dir);
    let mount = req.mount();
    let eff = conf::effective(dir, mount.as_ref().map(|m| &m.alias.options));
    // No PATH_TRANSLATED: it costs a sub-request, on every request an access script guards.
    let env = handler::build_environment(req, &eff, false);
    let group = handler::group_name(req, script.application_group.as_ref().unwrap_or(&conf::GroupSpec::Global), env.script_name);
    let call = HookCall { directive, script: &script.script, group: &group, cgi: &env.vars, url_scheme: env.url_scheme };
    match pool::enter(&group, |py| f(py, &call)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(lines)) => {
            for l in lines {
                req.log(ffi::APLOG_ERR, &l);
            }
            Err(())
        }
        Err(e) => {
            req.log(ffi::APLOG_ERR, &format!("{}: {directive} '{}': {e}", codes::HOOK_SCRIPT_FAILED, script.script));
            Err(())
        }
    }
}

/// Bytes of a C string Apache passes (empty for NULL).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string alive for the call.
unsafe fn arg<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return b"";
    }
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(p) }.to_bytes()
}

/// The WSGIAuthUserScript in force for `req`; logged (what to add) when there is none.
fn user_script<'r>(req: &Request<'r>, provider: &str) -> Option<&'r HookScript> {
    let script = req.dir_settings().and_then(|d| d.auth_user_script.as_ref());
    if script.is_none() {
        no_user_script(req, provider);
    }
    script
}

fn no_user_script(req: &Request<'_>, provider: &str) {
    req.log(ffi::APLOG_ERR, &format!(
        "{}: {provider} wsgi is used for '{}' but no WSGIAuthUserScript applies there; add WSGIAuthUserScript /path/to/auth.wsgi next to it",
        codes::HOOK_SCRIPT_FAILED,
        String::from_utf8_lossy(req.uri())
    ));
}

unsafe extern "C" fn check_password(r: *mut ffi::request_rec, user: *const c_char, password: *const c_char) -> ffi::authn_status {
    guard("the wsgi authn provider", ffi::authn_status_AUTH_GENERAL_ERROR, || {
        // SAFETY: r is the live request of this call; user and password are C strings Apache
        // keeps for the call.
        let (req, user, password) = unsafe { (Request::from_raw(r), arg(user), arg(password)) };
        let Some(script) = user_script(&req, "AuthBasicProvider") else {
            return ffi::authn_status_AUTH_GENERAL_ERROR;
        };
        match run(&req, "WSGIAuthUserScript", script, |py, call| py_hooks::check_password(py, call, user, password)) {
            Ok(Some(true)) => ffi::authn_status_AUTH_GRANTED,
            Ok(Some(false)) => ffi::authn_status_AUTH_DENIED,
            Ok(None) => ffi::authn_status_AUTH_USER_NOT_FOUND,
            Err(()) => ffi::authn_status_AUTH_GENERAL_ERROR,
        }
    })
}

unsafe extern "C" fn get_realm_hash(r: *mut ffi::request_rec, user: *const c_char, realm: *const c_char, rethash: *mut *mut c_char) -> ffi::authn_status {
    guard("the wsgi authn provider", ffi::authn_status_AUTH_GENERAL_ERROR, || {
        // SAFETY: as check_password.
        let (req, user, realm) = unsafe { (Request::from_raw(r), arg(user), arg(realm)) };
        let Some(script) = user_script(&req, "AuthDigestProvider") else {
            return ffi::authn_status_AUTH_GENERAL_ERROR;
        };
        match run(&req, "WSGIAuthUserScript", script, |py, call| py_hooks::get_realm_hash(py, call, user, realm)) {
            Ok(Some(hash)) => {
                let copy = req.pool_bytes(&hash);
                // SAFETY: rethash is Apache's out-parameter; the copy lives in the request pool.
                unsafe { *rethash = copy.as_ptr() as *mut c_char };
                ffi::authn_status_AUTH_USER_FOUND
            }
            Ok(None) => ffi::authn_status_AUTH_USER_NOT_FOUND,
            Err(()) => ffi::authn_status_AUTH_GENERAL_ERROR,
        }
    })
}

/// `Require wsgi-group NAME...`: granted when `groups_for_user` names one of the groups.
unsafe extern "C" fn check_group(r: *mut ffi::request_rec, require_line: *const c_char, _parsed: *const c_void) -> ffi::authz_status {
    guard("the wsgi-group authz provider", ffi::authz_status_AUTHZ_GENERAL_ERROR, || {
        // SAFETY: r is the live request; require_line is Apache's string for the call.
        let (req, line) = unsafe { (Request::from_raw(r), arg(require_line)) };
        let Some(user) = req.user() else {
            return ffi::authz_status_AUTHZ_DENIED_NO_USER;
        };
        let Some(script) = req.dir_settings().and_then(|d| d.auth_group_script.as_ref()) else {
            req.log(ffi::APLOG_ERR, &format!(
                "{}: 'Require wsgi-group' is used for '{}' but no WSGIAuthGroupScript applies there; add WSGIAuthGroupScript /path/to/auth.wsgi next to it",
                codes::HOOK_SCRIPT_FAILED,
                String::from_utf8_lossy(req.uri())
            ));
            return ffi::authz_status_AUTHZ_GENERAL_ERROR;
        };
        let wanted = conf::words(&String::from_utf8_lossy(line));
        match run(&req, "WSGIAuthGroupScript", script, |py, call| py_hooks::groups_for_user(py, call, user)) {
            Ok(groups) if groups.iter().any(|g| wanted.iter().any(|w| w.as_bytes() == g.as_slice())) => ffi::authz_status_AUTHZ_GRANTED,
            Ok(_) => ffi::authz_status_AUTHZ_DENIED,
            Err(()) => ffi::authz_status_AUTHZ_GENERAL_ERROR,
        }
    })
}

/// WSGIAccessScript: `allow_access(environ, host)` with the client's host name (when
/// HostnameLookups finds one) or address.
unsafe extern "C" fn access_checker(r: *mut ffi::request_rec) -> c_int {
    guard("the WSGIAccessScript access checker", ffi::HTTP_INTERNAL_SERVER_ERROR, || {
        // SAFETY: r is the live request of this hook.
        let req = unsafe { Request::from_raw(r) };
        let Some(script) = req.dir_settings().and_then(|d| d.access_script.as_ref()) else {
            return ffi::DECLINED;
        };
        let host = req.remote_host();
        match run(&req, "WSGIAccessScript", script, |py, call| py_hooks::allow_access(py, call, host)) {
            Ok(Some(true)) => ffi::OK,
            Ok(None) => ffi::DECLINED,
            Ok(Some(false)) => {
                req.log(ffi::APLOG_ERR, &format!(
                    "{}: client denied by WSGIAccessScript '{}': allow_access() returned False for '{}'",
                    codes::CLIENT_DENIED,
                    script.script,
                    String::from_utf8_lossy(req.uri())
                ));
                ffi::HTTP_FORBIDDEN
            }
            Err(()) => ffi::HTTP_INTERNAL_SERVER_ERROR,
        }
    })
}
