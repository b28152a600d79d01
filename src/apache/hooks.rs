//! Apache hooks: configuration passes, child start-up (Python initialisation) and URL mapping for
//! WSGIScriptAlias. The request handler is in `handler`.

use std::ffi::{CStr, c_char, c_int};


use super::cfg::{self, with_global};
use super::ffi;
use super::log;
use super::request::Hit;
use super::request_io::cstring;
use crate::codes;
use crate::config as conf;
use crate::python::{interp, pool, scripts};
use crate::wsgi::{self, environ::ProcessInfo};

/// Runs a hook body, turning a panic into `on_panic` and a log line: no panic may unwind into C.
pub(super) fn guard<T>(what: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    super::boundary::no_panic(f, |msg| {
        // SAFETY: ap_server_conf is valid in every hook after configuration.
        log::log_server(unsafe { ffi::ap_server_conf }, ffi::APLOG_CRIT, &format!("{}: internal error in {what}: {msg}; the request failed but the process keeps serving", codes::INTERNAL_PANIC));
        on_panic
    })
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
                    "{}: {item}",
                    codes::NOT_IMPLEMENTED
                ));
            }
            // A restart (graceful or not): Apache's scoreboard already exists (it outlives
            // restarts), so the groups start here. At the first start they wait for pre_mpm,
            // which runs once the scoreboard is made, so that their processes share it
            // (server-metrics=On reads it).
            // SAFETY: ap_state_query and ap_exists_scoreboard_image only read global state.
            if unsafe { ffi::ap_state_query(ffi::AP_SQ_CONFIG_GEN) } > 0 && unsafe { ffi::ap_exists_scoreboard_image() } != 0 {
                // SAFETY: post_config runs in the single-threaded parent with the live pconf.
                unsafe { super::daemon::start_groups(pconf, s) };
            }
        }
        ffi::OK
    })
}

/// Apache's MPM: its name and process and thread limits (for the `apache` Python module).
pub(super) fn mpm_info() -> crate::wsgi::environ::ApacheMpm {
    // SAFETY: ap_show_mpm returns a static NUL-terminated string (or NULL before the MPM is
    // loaded, handled here).
    let name = unsafe {
        let p = ffi::ap_show_mpm();
        if p.is_null() { String::new() } else { CStr::from_ptr(p).to_string_lossy().into_owned() }
    };
    crate::wsgi::environ::ApacheMpm {
        name,
        maximum_processes: mpm_query(ffi::AP_MPMQ_MAX_DAEMONS).max(1) as u32,
        threads_per_process: mpm_query(ffi::AP_MPMQ_MAX_THREADS).max(1) as u32,
    }
}

fn mpm_query(code: i32) -> i32 {
    let mut v: c_int = 0;
    // SAFETY: ap_mpm_query writes one int into our variable.
    unsafe { ffi::ap_mpm_query(code, &mut v) };
    v
}

/// First start: daemon groups are created here, after Apache detached from the terminal (so the
/// managers are children of the real parent), after the core made the scoreboard (this hook
/// runs last) and before the MPM forks its children. They allocate from pconf (their sockets
/// and cleanups live as long as the generation); httpd locks pconf around the MPM only in
/// APR_POOL_DEBUG builds, which Debian's is not.
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
        // An Apache child does not know why it stops (mod_wsgi gives no reason there either).
        interp::run_exit_hooks("");
        0
    })
}

pub unsafe extern "C" fn child_init(p: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
    guard("child_init", (), || {
        log::install();
        super::handler::note_process_id();
        super::daemon::close_listeners_in_child();
        let global = with_global(|g| g.clone());
        super::handler::EMBEDDED_RESTRICTED.store(global.restrict_embedded, std::sync::atomic::Ordering::Relaxed);
        if global.server_metrics {
            crate::wsgi::metrics::set_server_source(super::scoreboard::snapshot);
        }
        if global.restrict_embedded && !global.python_required {
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
            mpm: mpm_info(),
        };
        tracing::info!(target: "wsgi", "Initializing Python {} in process {} (embedded mode).", interp::python_version(), std::process::id());
        let opts = interp::InitOptions {
            python_home: global.python_home.clone(),
            python_path: global.python_path.clone(),
            process: Some(info),
            allow_stdin: !global.restrict_stdin.unwrap_or(true),
            restrict_stdout: global.restrict_stdout.unwrap_or(false),
            python: global.python.clone(),
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

unsafe fn pool_cstr(p: *mut ffi::apr_pool_t, bytes: &[u8]) -> *mut c_char {
    // SAFETY: copies the bytes into the pool and NUL-terminates.
    unsafe { ffi::apr_pstrmemdup(p, bytes.as_ptr().cast(), bytes.len()) }
}

/// Whether a mount's target is a folder of scripts: written with a trailing '/', or a directory.
/// What the file system says is remembered for a second per target (one `stat` per target and
/// second, not one per request).
fn is_folder(target: &[u8]) -> bool {
    use std::collections::HashMap;
    use std::os::unix::ffi::OsStrExt;
    use std::sync::RwLock;
    use std::time::{Duration, Instant};
    /// Per target path: whether it is a directory, and when that was looked at.
    type Seen = HashMap<Vec<u8>, (bool, Instant)>;
    static SEEN: RwLock<Option<Seen>> = RwLock::new(None);
    if target.ends_with(b"/") {
        return true;
    }
    if let Some((dir, at)) = SEEN.read().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(target).copied()) {
        if at.elapsed() < Duration::from_secs(1) {
            return dir;
        }
    }
    let dir = std::fs::metadata(std::ffi::OsStr::from_bytes(target)).is_ok_and(|m| m.is_dir());
    let mut seen = SEEN.write().unwrap_or_else(|e| e.into_inner());
    let map = seen.get_or_insert_with(HashMap::new);
    // Regex mounts can name many targets: keep the memory bounded.
    if map.len() > 1024 {
        map.clear();
    }
    map.insert(target.to_vec(), (dir, Instant::now()));
    dir
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
                let target = CStr::from_ptr(script).to_bytes();
                if is_folder(target) {
                    // A folder of scripts (as mod_alias's ScriptAlias): the rest of the URL is
                    // appended and Apache's directory walk splits it into the script file and
                    // PATH_INFO.
                    let rest = &uri[n..];
                    let mut path = target.strip_suffix(b"/").unwrap_or(target).to_vec();
                    if !rest.is_empty() && rest[0] != b'/' {
                        path.push(b'/');
                    }
                    path.extend_from_slice(rest);
                    hit.write(Hit { alias, script: std::ptr::null(), script_name: std::ptr::null(), path_info: std::ptr::null() });
                    (*r).filename = pool_cstr((*r).pool, &path);
                    (*r).path_info = std::ptr::null_mut();
                } else {
                    hit.write(Hit {
                        alias,
                        script,
                        script_name: pool_cstr((*r).pool, &uri[..n]),
                        path_info: pool_cstr((*r).pool, &uri[n..]),
                    });
                    (*r).filename = script as *mut c_char;
                    (*r).path_info = pool_cstr((*r).pool, &uri[n..]);
                }
                (*r).handler = c"wsgi-script".as_ptr();
                ffi::apr_table_setn((*r).notes, c"alias-forced-type".as_ptr(), (*r).handler);
                ffi::ap_set_module_config((*r).request_config, &raw const super::module::wsgi_module, hit.cast());
                return ffi::OK;
            }
            ffi::DECLINED
        }
    })
}
