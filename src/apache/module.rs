//! The module record Apache loads (`wsgi_module`), the directive table and hook registration.

use std::ffi::{CStr, c_char};
use std::ptr::{null, null_mut};

use super::ffi::{self, cmd_func, command_rec, module};
use super::{cfg, directives as d, hooks};

type RawFn = unsafe extern "C" fn(*mut ffi::cmd_parms, *mut libc::c_void, *const c_char) -> *const c_char;

const fn raw(name: &'static CStr, f: RawFn, req_override: i32, help: &'static CStr) -> command_rec {
    command_rec {
        name: name.as_ptr(),
        func: cmd_func { raw_args: Some(f) },
        cmd_data: null_mut(),
        req_override,
        args_how: ffi::cmd_how_RAW_ARGS,
        errmsg: help.as_ptr(),
    }
}

const fn take1(name: &'static CStr, f: RawFn, req_override: i32, help: &'static CStr) -> command_rec {
    command_rec {
        name: name.as_ptr(),
        func: cmd_func { take1: Some(f) },
        cmd_data: null_mut(),
        req_override,
        args_how: ffi::cmd_how_TAKE1,
        errmsg: help.as_ptr(),
    }
}

const SERVER: i32 = ffi::RSRC_CONF | ffi::ACCESS_CONF;
const DIR_FILEINFO: i32 = ffi::RSRC_CONF | ffi::ACCESS_CONF | ffi::OR_FILEINFO;
const ANYWHERE: i32 = ffi::RSRC_CONF | ffi::ACCESS_CONF | ffi::OR_ALL;

/// Directives of mod_wsgi (4.x or 6.x) that have no effect here, each with the reason the
/// startup warning gives (kept as the command's data).
const fn accepted(name: &'static CStr, reason: &'static CStr) -> command_rec {
    command_rec {
        name: name.as_ptr(),
        func: cmd_func { raw_args: Some(d::accepted) },
        cmd_data: reason.as_ptr() as *mut libc::c_void,
        req_override: ANYWHERE,
        args_how: ffi::cmd_how_RAW_ARGS,
        errmsg: c"accepted for compatibility; has no effect here".as_ptr(),
    }
}

const ACCEPTED: [command_rec; 17] = [
    // A section: Apache has already read its body into the configuration tree, and nothing
    // walks it, so the directives inside are skipped.
    accepted(c"<WSGIInterpreterOptions", c"mod_wsgi 6's per-interpreter options are not implemented; the section and the directives in it are skipped"),
    accepted(c"WSGIAcceptMutex", c"Apache 2.4 chooses its accept mutex itself (the Mutex directive), and daemon processes here need none"),
    accepted(c"WSGISocketRotation", c"daemon sockets are made afresh by the Apache parent at every start and restart"),
    accepted(c"WSGIDestroyInterpreter", c"interpreters are not torn down at process exit (their atexit functions still run)"),
    accepted(c"WSGIPerInterpreterGIL", c"it needs Python 3.12 or later; the Python 3.11 embedded here has one GIL for all interpreters"),
    accepted(c"WSGIFreeThreading", c"it needs a free-threaded Python 3.13 build; this module embeds Python 3.11"),
    accepted(c"WSGICaseSensitivity", c"it only matters on case-insensitive file systems; script paths are used as written"),
    accepted(c"WSGIPassApacheRequest", c"Python code cannot be given Apache's request record (there is no apache.request_rec object)"),
    accepted(c"WSGIIgnoreActivity", c"not implemented: every request counts as activity for inactivity-timeout"),
    accepted(c"WSGISlowRequests", c"not implemented: slow requests are not reported"),
    accepted(c"WSGITelemetryService", c"mod_wsgi 6's telemetry reporter is not implemented: no telemetry datagrams are sent"),
    accepted(c"WSGITelemetryOptions", c"mod_wsgi 6's telemetry reporter is not implemented: no telemetry datagrams are sent"),
    accepted(c"WSGIVerboseDebugging", c"not implemented: use LogLevel wsgi:debug"),
    accepted(c"WSGILazyInitialization", c"Python is always initialised in the Apache children and daemon processes, never in the Apache parent"),
    accepted(c"WSGIGroupAuthoritative", c"Apache 2.4 combines authorisation with <RequireAny>/<RequireAll>; write those instead"),
    accepted(c"WSGINewRelicConfigFile", c"mod_wsgi no longer starts the New Relic agent; configure the agent in the application"),
    accepted(c"WSGINewRelicEnvironment", c"mod_wsgi no longer starts the New Relic agent; configure the agent in the application"),
];

const AUTH: i32 = ffi::ACCESS_CONF | ffi::OR_AUTHCFG;

const MAIN: [command_rec; 36] = [
    raw(c"WSGIRestrictProcess", d::restrict_process, SERVER, c"process group names (%{GLOBAL}: embedded) that requests here may run in"),
    raw(c"WSGIPythonOptimize", d::global_setting, ffi::RSRC_CONF, c"0, 1 or 2 (as python -O)"),
    raw(c"WSGIDontWriteBytecode", d::global_setting, ffi::RSRC_CONF, c"On or Off: write no .pyc files"),
    raw(c"WSGIPythonWarnings", d::global_setting, ffi::RSRC_CONF, c"a warning filter as python -W takes it"),
    raw(c"WSGIPythonHashSeed", d::global_setting, ffi::RSRC_CONF, c"random or a number (PYTHONHASHSEED)"),
    raw(c"WSGISwitchInterval", d::global_setting, ffi::RSRC_CONF, c"seconds between GIL switches (sys.setswitchinterval)"),
    raw(c"WSGIPythonEggs", d::global_setting, ffi::RSRC_CONF, c"directory for PYTHON_EGG_CACHE"),
    raw(c"WSGIRestrictSignal", d::global_setting, ffi::RSRC_CONF, c"On (default: signal.signal() is ignored) or Off"),
    raw(c"WSGIHandlerScript", d::handler_script, SERVER, c"handler-name /path/to/script.wsgi [options]: SetHandler handler-name runs the script's handle_request"),
    raw(c"WSGIAccessScript", d::hook_script, AUTH, c"/path/to/script.wsgi [application-group=NAME]: allow_access(environ, host)"),
    raw(c"WSGIAuthUserScript", d::hook_script, AUTH, c"/path/to/script.wsgi [application-group=NAME]: check_password / get_realm_hash"),
    raw(c"WSGIAuthGroupScript", d::hook_script, AUTH, c"/path/to/script.wsgi [application-group=NAME]: groups_for_user(environ, user)"),
    raw(c"WSGIDispatchScript", d::hook_script, SERVER, c"/path/to/script.wsgi [application-group=NAME]: process_group / application_group / callable_object"),
    raw(c"WSGIImportScript", d::import_script, SERVER, c"/path/to/script.wsgi process-group=NAME application-group=NAME"),
    raw(c"WSGIScriptAlias", d::script_alias, SERVER, c"URL-path /absolute/path/to/script.wsgi [options]"),
    raw(c"WSGIScriptAliasMatch", d::script_alias, SERVER, c"regex /absolute/path/to/script.wsgi [options]"),
    raw(c"WSGIDaemonProcess", d::daemon_process, SERVER, c"name [option=value ...]"),
    take1(c"WSGIProcessGroup", d::process_group, SERVER, c"name of a WSGIDaemonProcess group, or %{GLOBAL}"),
    take1(c"WSGIApplicationGroup", d::application_group, SERVER, c"application group (interpreter) name"),
    raw(c"WSGITrustedProxyHeaders", d::trusted_proxy_headers, DIR_FILEINFO, c"proxy headers to believe, e.g. X-Forwarded-For X-Forwarded-Proto"),
    raw(c"WSGITrustedProxies", d::trusted_proxies, DIR_FILEINFO, c"addresses or CIDR ranges of the proxies whose headers are believed"),
    take1(c"WSGICallableObject", d::callable_object, DIR_FILEINFO, c"name of the WSGI callable in the script"),
    take1(c"WSGIPassAuthorization", d::flag_setting, ffi::RSRC_CONF | ffi::ACCESS_CONF | ffi::OR_AUTHCFG, c"On or Off"),
    take1(c"WSGIScriptReloading", d::flag_setting, DIR_FILEINFO, c"On or Off"),
    take1(c"WSGIChunkedRequest", d::flag_setting, DIR_FILEINFO, c"On or Off"),
    take1(c"WSGIMapHEADToGET", d::flag_setting, DIR_FILEINFO, c"On, Off or Auto"),
    take1(c"WSGIEnableSendfile", d::flag_setting, DIR_FILEINFO, c"On or Off"),
    take1(c"WSGIErrorOverride", d::flag_setting, DIR_FILEINFO, c"On or Off"),
    raw(c"WSGIPythonHome", d::global_setting, ffi::RSRC_CONF, c"Python installation or virtualenv prefix"),
    raw(c"WSGIPythonPath", d::global_setting, ffi::RSRC_CONF, c"directories to add to sys.path (':'-separated)"),
    raw(c"WSGISocketPrefix", d::global_setting, ffi::RSRC_CONF, c"path prefix for daemon sockets"),
    raw(c"WSGIRestrictEmbedded", d::global_setting, ffi::RSRC_CONF, c"On or Off"),
    raw(c"WSGIServerMetrics", d::global_setting, ffi::RSRC_CONF, c"On or Off (default): mod_wsgi.server_metrics() returns Apache's scoreboard"),
    raw(c"WSGIRestrictStdin", d::global_setting, ffi::RSRC_CONF, c"On (default: sys.stdin raises) or Off"),
    raw(c"WSGIRestrictStdout", d::global_setting, ffi::RSRC_CONF, c"On (sys.stdout raises) or Off (default)"),
    // Zeroed terminator is appended in COMMANDS below.
    command_rec {
        name: null(),
        func: cmd_func { raw_args: None },
        cmd_data: null_mut(),
        req_override: 0,
        args_how: 0,
        errmsg: null(),
    },
];

const N: usize = ACCEPTED.len() + MAIN.len();

const fn all_commands() -> [command_rec; N] {
    // MAIN ends with the terminator, so the accepted ones go first.
    let mut out = [MAIN[MAIN.len() - 1]; N];
    let mut i = 0;
    while i < ACCEPTED.len() {
        out[i] = ACCEPTED[i];
        i += 1;
    }
    let mut j = 0;
    while j < MAIN.len() {
        out[i + j] = MAIN[j];
        j += 1;
    }
    out
}

/// The directive table, null-terminated as Apache requires.
pub struct Commands(pub [command_rec; N]);
// SAFETY: the table is immutable and only holds pointers to static strings and functions.
unsafe impl Sync for Commands {}
pub static COMMANDS: Commands = Commands(all_commands());

/// A null-terminated list of module names for hook ordering.
pub struct Names<const K: usize>(pub [*const c_char; K]);
// SAFETY: immutable pointers to static strings.
unsafe impl<const K: usize> Sync for Names<K> {}
static AFTER_ALIAS: Names<2> = Names([c"mod_alias.c".as_ptr(), null()]);

/// The module record. Apache writes `module_index`, `next` and `dynamic_load_handle` into it, so
/// it must be a `static mut`; only Apache touches it after load.
#[unsafe(no_mangle)]
pub static mut wsgi_module: module = module {
    version: ffi::MODULE_MAGIC_NUMBER_MAJOR,
    minor_version: ffi::MODULE_MAGIC_NUMBER_MINOR,
    module_index: -1,
    name: c"mod_wsgi.c".as_ptr(),
    dynamic_load_handle: null_mut(),
    next: null_mut(),
    magic: ffi::MODULE_MAGIC_COOKIE as libc::c_ulong,
    rewrite_args: None,
    create_dir_config: Some(cfg::create_dir_config),
    merge_dir_config: Some(cfg::merge_dir_config),
    create_server_config: Some(cfg::create_server_config),
    merge_server_config: Some(cfg::merge_server_config),
    cmds: COMMANDS.0.as_ptr(),
    register_hooks: Some(register_hooks),
    flags: 0,
};

unsafe extern "C" fn register_hooks(p: *mut ffi::apr_pool_t) {
    // SAFETY: called by Apache while loading the module; the name lists are static.
    unsafe {
        ffi::ap_hook_pre_config(Some(hooks::pre_config), null(), null(), ffi::APR_HOOK_MIDDLE);
        ffi::ap_hook_post_config(Some(hooks::post_config), null(), null(), ffi::APR_HOOK_MIDDLE);
        // Last: after the core made the scoreboard, which daemon processes then share.
        ffi::ap_hook_pre_mpm(Some(hooks::pre_mpm), null(), null(), ffi::APR_HOOK_LAST);
        ffi::ap_hook_child_init(Some(hooks::child_init), null(), null(), ffi::APR_HOOK_MIDDLE);
        ffi::ap_hook_translate_name(Some(hooks::translate_name), AFTER_ALIAS.0.as_ptr(), null(), ffi::APR_HOOK_MIDDLE);
        ffi::ap_hook_handler(Some(super::handler::handler), null(), null(), ffi::APR_HOOK_MIDDLE);
        super::auth::register(p);
    }
}
