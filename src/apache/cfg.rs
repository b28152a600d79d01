//! Apache-owned configuration records: Rust values boxed into Apache pools.
//!
//! Per-server records hold a [`ServerSettings`] (mounts, daemon groups) plus compiled regexes for
//! WSGIScriptAliasMatch; per-directory records hold a [`DirSettings`]. Both are dropped by a
//! cleanup on the pool Apache allocated them from. Process-wide settings (WSGIPythonHome, ...)
//! live in [`GLOBAL`], reset at the start of every configuration pass.

use std::sync::Mutex;

use super::ffi;
use crate::config::{DirSettings, ServerSettings};

/// Per-server record.
#[derive(Default)]
pub struct ServerCfg {
    pub settings: ServerSettings,
    /// One compiled regex per `settings.aliases` entry (null for plain aliases).
    pub regexes: Vec<*mut ffi::ap_regex_t>,
}

/// Settings that apply to the whole server (main config only).
#[derive(Debug, Default, Clone)]
pub struct Global {
    pub python_home: Option<String>,
    pub python_path: Vec<String>,
    pub socket_prefix: Option<String>,
    pub restrict_embedded: bool,
    /// WSGIServerMetrics: `mod_wsgi.server_metrics()` reads the scoreboard (Apache children).
    pub server_metrics: bool,
    /// A script runs in Apache's children even when WSGIRestrictEmbedded is On: an auth, access,
    /// dispatch or handler script is configured.
    pub python_required: bool,
    /// WSGIRestrictStdin (mod_wsgi's default: On) and WSGIRestrictStdout (default: Off).
    pub restrict_stdin: Option<bool>,
    pub restrict_stdout: Option<bool>,
    /// WSGIPythonOptimize, WSGIDontWriteBytecode, WSGIPythonWarnings, WSGIPythonHashSeed,
    /// WSGISwitchInterval, WSGIPythonEggs, WSGIRestrictSignal.
    pub python: crate::config::PythonSettings,
    /// WSGIImportScript lines: scripts to load when a process of their group starts.
    pub imports: Vec<crate::config::ImportScript>,
    /// Directives/options accepted for compatibility but not implemented: named once at startup.
    pub unimplemented: Vec<String>,
}

pub static GLOBAL: Mutex<Option<Global>> = Mutex::new(None);

/// Runs `f` on the process-wide settings.
pub fn with_global<T>(f: impl FnOnce(&mut Global) -> T) -> T {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Global::default))
}

unsafe extern "C" fn drop_box<T>(data: *mut libc::c_void) -> ffi::apr_status_t {
    // SAFETY: `data` came from Box::into_raw in `pool_box::<T>` and this cleanup runs once.
    drop(unsafe { Box::from_raw(data as *mut T) });
    0
}

/// Moves `value` into a box owned by pool `p`: it is dropped when the pool is cleared.
///
/// # Safety
/// `p` must be a live pool.
pub unsafe fn pool_box<T>(p: *mut ffi::apr_pool_t, value: T) -> *mut T {
    let ptr = Box::into_raw(Box::new(value));
    // SAFETY: p is live; the cleanup frees exactly this box. The child cleanup is a no-op so a
    // forked process that execs does not free memory its parent owns.
    unsafe {
        ffi::apr_pool_cleanup_register(p, ptr as *const libc::c_void, Some(drop_box::<T>), Some(ffi::apr_pool_cleanup_null));
    }
    ptr
}

/// Runs a configuration callback; a panic gives `fallback` instead of unwinding into Apache.
fn no_unwind(fallback: *mut libc::c_void, f: impl FnOnce() -> *mut libc::c_void) -> *mut libc::c_void {
    super::boundary::no_panic(f, |_| fallback)
}

pub unsafe extern "C" fn create_server_config(p: *mut ffi::apr_pool_t, _s: *mut ffi::server_rec) -> *mut libc::c_void {
    // SAFETY: Apache passes a live configuration pool.
    no_unwind(std::ptr::null_mut(), || unsafe { pool_box(p, ServerCfg::default()).cast() })
}

pub unsafe extern "C" fn merge_server_config(
    p: *mut ffi::apr_pool_t,
    base: *mut libc::c_void,
    add: *mut libc::c_void,
) -> *mut libc::c_void {
    // SAFETY: base and add are records made by create_server_config (live for the config pool).
    no_unwind(add, || unsafe {
        let base = &*(base as *const ServerCfg);
        let add = &*(add as *const ServerCfg);
        let settings = ServerSettings::merge(&base.settings, &add.settings);
        let mut regexes = add.regexes.clone();
        regexes.extend(base.regexes.iter().copied());
        pool_box(p, ServerCfg { settings, regexes }).cast()
    })
}

pub unsafe extern "C" fn create_dir_config(p: *mut ffi::apr_pool_t, _dir: *mut libc::c_char) -> *mut libc::c_void {
    // SAFETY: Apache passes a live pool.
    no_unwind(std::ptr::null_mut(), || unsafe { pool_box(p, DirSettings::default()).cast() })
}

pub unsafe extern "C" fn merge_dir_config(
    p: *mut ffi::apr_pool_t,
    base: *mut libc::c_void,
    add: *mut libc::c_void,
) -> *mut libc::c_void {
    // SAFETY: both are records made by create_dir_config/merge_dir_config, live for their pools,
    // which outlive the merged result's pool.
    no_unwind(add, || unsafe {
        let merged = DirSettings::merge(&*(base as *const DirSettings), &*(add as *const DirSettings));
        pool_box(p, merged).cast()
    })
}

/// The server record of `s`.
///
/// # Safety
/// `s` must be a live server_rec of the current configuration.
pub unsafe fn server_cfg<'a>(s: *const ffi::server_rec) -> &'a ServerCfg {
    // SAFETY: every server_rec has our record once configuration has been read.
    unsafe { &*(ffi::ap_get_module_config((*s).module_config, &raw const super::module::wsgi_module) as *const ServerCfg) }
}

/// The server record of `s`, for directive handlers.
///
/// # Safety
/// `s` must be a live server_rec during configuration reading (single-threaded).
pub unsafe fn server_cfg_mut<'a>(s: *const ffi::server_rec) -> &'a mut ServerCfg {
    // SAFETY: as server_cfg; configuration is read on one thread, nothing else holds a reference.
    unsafe { &mut *(ffi::ap_get_module_config((*s).module_config, &raw const super::module::wsgi_module) as *mut ServerCfg) }
}

/// The merged directory record for request `r`.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn dir_cfg<'a>(r: *const ffi::request_rec) -> Option<&'a DirSettings> {
    // SAFETY: per_dir_config holds our merged record (or null if none).
    unsafe {
        let p = ffi::ap_get_module_config((*r).per_dir_config, &raw const super::module::wsgi_module) as *const DirSettings;
        p.as_ref()
    }
}
