//! Daemon mode in the Apache parent: one listening socket and one group manager per
//! WSGIDaemonProcess, created per configuration generation, supervised with APR's other-child
//! API and stopped when the configuration pool is cleared (restart or stop).

use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::cfg::{self, with_global};
use super::ffi;
use super::log;
use crate::codes;
use crate::config::DaemonProcess;
use crate::daemon::{GroupRuntime, manager};
use crate::sys;

/// The groups of the current generation. Apache children are forked after this is filled, so
/// they find each group's socket and secret here.
static GROUPS: Mutex<Vec<Arc<GroupRuntime>>> = Mutex::new(Vec::new());
/// Manager pids per group index, for the cleanup at restart/stop.
static MANAGERS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());
static STARTED_GEN: AtomicI64 = AtomicI64::new(-1);
/// Groups defined in the configuration that could not be started (socket or user errors).
static BROKEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether `name` is a defined group that failed to start (its requests get 503).
pub fn is_broken(name: &str) -> bool {
    BROKEN.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|n| n == name)
}

/// In an Apache child: closes every group's listening socket (only daemons accept on them).
pub fn close_listeners_in_child() {
    for g in GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        // The child's copy of a descriptor it must not use.
        drop(g.take_listener());
    }
}

/// The runtime of the daemon group `name`, if it exists in this generation.
pub fn find(name: &str) -> Option<Arc<GroupRuntime>> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|g| g.spec.name == name).cloned()
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

struct Ids {
    uid: u32,
    gid: u32,
    name: String,
}

/// Apache's own User/Group (what its children run as).
// Through `&raw const`, so no reference to the mutable static is made (which Rust 2024 forbids).
#[allow(clippy::deref_addrof)]
fn apache_ids() -> Ids {
    // SAFETY: ap_unixd_config is filled while the configuration is read and only read here.
    unsafe {
        let u = &*(&raw const ffi::ap_unixd_config);
        let name = if u.user_name.is_null() { String::new() } else { CStr::from_ptr(u.user_name).to_string_lossy().into_owned() };
        if sys::process::euid() != 0 {
            return Ids { uid: sys::process::euid(), gid: sys::process::egid(), name };
        }
        Ids { uid: u.user_id, gid: u.group_id, name }
    }
}

/// A user name, or `#uid` as Apache and mod_wsgi allow: (uid, primary gid). A `#uid` the user
/// database does not know has its own number as group.
fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    if let Some(n) = name.strip_prefix('#') {
        let uid: u32 = n.parse().map_err(|_| format!("'{name}' is not a user name or #uid"))?;
        return Ok((uid, sys::process::user_gid(uid).ok().flatten().unwrap_or(uid)));
    }
    match sys::process::user_ids(name) {
        Ok(Some(ids)) => Ok(ids),
        _ => Err(format!("user '{name}' does not exist")),
    }
}

/// A group name, or `#gid`.
fn lookup_group(name: &str) -> Result<u32, String> {
    if let Some(n) = name.strip_prefix('#') {
        return n.parse().map_err(|_| format!("'{name}' is not a group name or #gid"));
    }
    match sys::process::group_id(name) {
        Ok(Some(gid)) => Ok(gid),
        _ => Err(format!("group '{name}' does not exist")),
    }
}

fn daemon_ids(spec: &DaemonProcess, apache: &Ids) -> Result<Ids, String> {
    let (uid, mut gid, name) = match &spec.user {
        Some(u) => {
            let (uid, gid) = lookup_user(u)?;
            (uid, gid, u.clone())
        }
        None => (apache.uid, apache.gid, apache.name.clone()),
    };
    if let Some(g) = &spec.group {
        gid = lookup_group(g)?;
    }
    Ok(Ids { uid, gid, name })
}

/// Creates the group's listening socket: only `owner` (Apache's user, or socket-user=) may
/// connect. send-buffer-size= / receive-buffer-size= size its buffers.
fn listen(path: &str, spec: &DaemonProcess, owner: &Ids) -> Result<OwnedFd, String> {
    if path.len() >= 108 {
        return Err(format!("the socket path '{path}' is too long for a Unix socket (108 bytes); set a shorter WSGISocketPrefix"));
    }
    let _ = std::fs::remove_file(path);
    let fd = sys::socket::unix_stream_socket(true).map_err(|e| format!("socket(): {e}"))?;
    // The socket file is created 0600 (the parent is single-threaded: the umask is ours alone).
    let old = sys::process::umask(0o177);
    let bound = sys::socket::bind_unix(fd.as_fd(), path);
    sys::process::umask(old);
    bound.map_err(|e| format!("cannot bind '{path}': {e}"))?;
    if sys::process::euid() == 0 {
        let _ = std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid));
    }
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    sys::socket::set_buffer_sizes(fd.as_fd(), spec.send_buffer_size, spec.receive_buffer_size)
        .map_err(|e| format!("cannot set send-buffer-size/receive-buffer-size on '{path}': {e}"))?;
    sys::socket::listen(fd.as_fd(), spec.listen_backlog.max(1) as i32).map_err(|e| format!("cannot listen on '{path}': {e}"))?;
    Ok(fd)
}

/// The directory for this Apache's sockets: private to Apache's user.
fn socket_dir(pconf: *mut ffi::apr_pool_t, owner: &Ids) -> Result<String, String> {
    let prefix = with_global(|g| g.socket_prefix.clone());
    // SAFETY: both functions return pool strings (or null) for a NUL-terminated input.
    let base = unsafe {
        let p = match &prefix {
            Some(p) => ffi::ap_server_root_relative(pconf, c(p).as_ptr()),
            None => ffi::ap_runtime_dir_relative(pconf, c"wsgi".as_ptr()),
        };
        if p.is_null() {
            return Err("cannot resolve WSGISocketPrefix".into());
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    let mut dir = format!("{base}.{}.d", std::process::id());
    // Leave room for "/GEN.N.sock" within the 108 bytes of a Unix socket address.
    if dir.len() > 80 {
        // A fresh directory with an unpredictable name (mkdtemp): nobody can have planted it.
        let short = sys::fd::mkdtemp("/tmp/mod_wsgi.XXXXXX").map_err(|e| format!("cannot create a socket directory under /tmp: {e}"))?;
        // SAFETY: ap_server_conf is set before any hook runs.
        log::log_server(unsafe { ffi::ap_server_conf }, ffi::APLOG_INFO, &format!(
            "the socket directory '{dir}' is too long for Unix socket paths; using '{short}' instead (set WSGISocketPrefix to choose)"
        ));
        dir = short;
    }
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(format!("cannot create the socket directory '{dir}': {e}; set WSGISocketPrefix to a writable place such as /var/run/apache2/wsgi"));
        }
    }
    if sys::process::euid() == 0 {
        let _ = std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid));
    }
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    Ok(dir)
}

/// Apache's listening sockets, so a manager can close them.
fn apache_listener_fds() -> Vec<RawFd> {
    let mut out = vec![];
    // SAFETY: walks Apache's listener list (set up before post_config) reading each socket's fd.
    unsafe {
        let mut l = ffi::ap_listeners;
        while !l.is_null() {
            let mut fd: ffi::apr_os_sock_t = -1;
            if !(*l).sd.is_null() && ffi::apr_os_sock_get(&mut fd, (*l).sd) == 0 {
                out.push(fd);
            }
            l = (*l).next;
        }
    }
    out
}

/// Forks the manager of group `index`. Returns its pid.
fn fork_manager(index: usize) -> Option<libc::pid_t> {
    let groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let rt = groups.get(index)?.clone();
    let listeners = apache_listener_fds();
    let name = rt.spec.name.clone();
    let child = |[]: [OwnedFd; 0]| -> Infallible {
        super::log::install();
        // Close what this child must not keep: Apache's listeners and the other groups' sockets.
        for fd in listeners {
            // SAFETY: in this forked child, which never returns into Apache (fork_unchecked ends
            // it with _exit), APR's copy of the listener is never used or closed again: the child
            // may own it.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        for g in groups.iter().filter(|g| !Arc::ptr_eq(g, &rt)) {
            drop(g.take_listener());
        }
        // server-metrics=On: the group's processes (forked from this one) read Apache's
        // scoreboard, which exists by now and which they share.
        if rt.spec.server_metrics {
            crate::wsgi::metrics::set_server_source(super::scoreboard::snapshot);
        }
        manager::manager_main(rt)
    };
    // SAFETY: the Apache parent runs no other threads, so the child may do anything; it never
    // returns into Apache (manager_main ends with _exit, a panic with _exit(1)).
    match unsafe { sys::process::fork_unchecked([], child) } {
        Ok(pid) => Some(pid),
        Err(e) => {
            // SAFETY: ap_server_conf is valid in the parent after configuration.
            log::log_server(unsafe { ffi::ap_server_conf }, ffi::APLOG_ERR, &format!("{}: cannot fork the manager of daemon process group '{name}': {e}", codes::DAEMON_EXITED));
            None
        }
    }
}

#[repr(C)]
struct Watched {
    proc_: ffi::apr_proc_t,
    index: usize,
    pool: *mut ffi::apr_pool_t,
}

unsafe fn watch(pool: *mut ffi::apr_pool_t, index: usize, pid: libc::pid_t) {
    // SAFETY: the record is allocated from pconf, which outlives the registration (APR
    // unregisters it when pconf is cleared).
    unsafe {
        let w = ffi::apr_palloc(pool, std::mem::size_of::<Watched>()) as *mut Watched;
        w.write(Watched { proc_: std::mem::zeroed(), index, pool });
        (*w).proc_.pid = pid;
        ffi::apr_proc_other_child_register(&raw mut (*w).proc_, Some(maintenance), w.cast(), std::ptr::null_mut(), pool);
    }
    let mut m = MANAGERS.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() <= index {
        m.resize(index + 1, 0);
    }
    m[index] = pid;
}

unsafe extern "C" fn maintenance(reason: libc::c_int, data: *mut libc::c_void, status: libc::c_int) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: data is the Watched record registered in `watch`.
        let w = unsafe { &*(data as *const Watched) };
        match reason {
            ffi::APR_OC_REASON_DEATH | ffi::APR_OC_REASON_LOST => {
                // SAFETY: unregistering the record APR just reported on.
                unsafe { ffi::apr_proc_other_child_unregister(data) };
                let mut state: libc::c_int = 0;
                // SAFETY: ap_mpm_query writes one int.
                unsafe { ffi::ap_mpm_query(ffi::AP_MPMQ_MPM_STATE, &mut state) };
                if state == ffi::AP_MPMQ_STOPPING {
                    return;
                }
                let name = GROUPS.lock().unwrap_or_else(|e| e.into_inner()).get(w.index).map(|g| g.spec.name.clone()).unwrap_or_default();
                // SAFETY: ap_server_conf is set before any hook or callback runs.
                log::log_server(unsafe { ffi::ap_server_conf }, ffi::APLOG_WARNING, &format!("{}: the manager of daemon process group '{name}' (pid {}) exited (status {status}); starting it again", codes::DAEMON_EXITED, w.proc_.pid));
                if let Some(pid) = fork_manager(w.index) {
                    // SAFETY: pool is pconf, still live (we are not stopping).
                    unsafe { watch(w.pool, w.index, pid) };
                }
            }
            _ => {}
        }
    });
}

/// Stops every manager of the generation (pconf cleanup: restart or stop).
unsafe extern "C" fn stop_managers(_data: *mut libc::c_void) -> ffi::apr_status_t {
    let _ = std::panic::catch_unwind(|| {
        let pids: Vec<libc::pid_t> = std::mem::take(&mut *MANAGERS.lock().unwrap_or_else(|e| e.into_inner()));
        for &p in pids.iter().filter(|p| **p > 0) {
            let _ = sys::process::kill(p, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
        let mut left: Vec<libc::pid_t> = pids.into_iter().filter(|p| *p > 0).collect();
        while !left.is_empty() && std::time::Instant::now() < deadline {
            // Reaping our own children; ECHILD (already reaped by the MPM) ends the wait.
            left.retain(|&p| matches!(sys::process::waitpid(p, libc::WNOHANG), Ok(None)));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for p in left {
            let _ = sys::process::kill(p, libc::SIGKILL);
            let _ = sys::process::waitpid(p, 0);
        }
        let groups = std::mem::take(&mut *GROUPS.lock().unwrap_or_else(|e| e.into_inner()));
        for g in groups {
            // Close our listening socket, remove its path and (if now empty) its directory.
            drop(g.take_listener());
            let _ = std::fs::remove_file(&g.socket_path);
            if let Some(dir) = std::path::Path::new(&g.socket_path).parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    });
    0
}

/// Creates every daemon group of this configuration generation and starts its manager.
/// Runs at most once per generation (called from pre_mpm at first start, post_config at restarts).
///
/// # Safety
/// Must run in the Apache parent, single-threaded, with `pconf` the live configuration pool and
/// `s` the main server.
pub unsafe fn start_groups(pconf: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
    // SAFETY: ap_state_query only reads global state.
    let generation = unsafe { ffi::ap_state_query(ffi::AP_SQ_CONFIG_GEN) } as i64;
    if STARTED_GEN.swap(generation, Ordering::SeqCst) == generation {
        return;
    }
    let mut specs: Vec<DaemonProcess> = vec![];
    let mut cur = s;
    while !cur.is_null() {
        // SAFETY: walking the live server list.
        let sc = unsafe { cfg::server_cfg(cur) };
        for d in &sc.settings.daemons {
            if !specs.iter().any(|x| x.name == d.name) {
                specs.push(d.clone());
            }
        }
        // SAFETY: cur is a live server_rec; `next` links the virtual hosts (null at the end).
        cur = unsafe { (*cur).next };
    }
    if specs.is_empty() {
        return;
    }
    let apache = apache_ids();
    let dir = match socket_dir(pconf, &apache) {
        Ok(d) => d,
        Err(e) => {
            log::log_server(s, ffi::APLOG_ERR, &format!("{}: {e}; daemon mode is unavailable", codes::DAEMON_UNAVAILABLE));
            *BROKEN.lock().unwrap_or_else(|e| e.into_inner()) = specs.iter().map(|d| d.name.clone()).collect();
            return;
        }
    };
    let mut groups = vec![];
    let mut broken = vec![];
    for (i, spec) in specs.into_iter().enumerate() {
        let ids = match daemon_ids(&spec, &apache) {
            Ok(ids) => ids,
            Err(e) => {
                log::log_server(s, ffi::APLOG_ERR, &format!("{}: daemon process group '{}': {e}; check user= and group=", codes::DAEMON_UNAVAILABLE, spec.name));
                broken.push(spec.name.clone());
                continue;
            }
        };
        let path = format!("{dir}/{generation}.{i}.sock");
        // socket-user=: the socket belongs to (and only accepts) that user, for servers whose
        // children run as other users (mod_ruid2, mpm-itk); otherwise Apache's user.
        let sock_owner = match &spec.socket_user {
            Some(u) => match lookup_user(u) {
                Ok((uid, gid)) => Ids { uid, gid, name: u.clone() },
                Err(e) => {
                    log::log_server(s, ffi::APLOG_ERR, &format!("{}: daemon process group '{}': socket-user: {e}", codes::DAEMON_UNAVAILABLE, spec.name));
                    broken.push(spec.name.clone());
                    continue;
                }
            },
            None => Ids { uid: apache.uid, gid: apache.gid, name: apache.name.clone() },
        };
        let supplementary_gids = match spec.supplementary_groups.iter().map(|g| lookup_group(g)).collect::<Result<Vec<_>, _>>() {
            Ok(gids) => gids,
            Err(e) => {
                log::log_server(s, ffi::APLOG_ERR, &format!("{}: daemon process group '{}': supplementary-groups: {e}", codes::DAEMON_UNAVAILABLE, spec.name));
                broken.push(spec.name.clone());
                continue;
            }
        };
        let script_uid = match spec.script_user.as_deref().map(lookup_user).transpose() {
            Ok(ids) => ids.map(|(uid, _)| uid),
            Err(e) => {
                log::log_server(s, ffi::APLOG_ERR, &format!("{}: daemon process group '{}': script-user: {e}", codes::DAEMON_UNAVAILABLE, spec.name));
                broken.push(spec.name.clone());
                continue;
            }
        };
        let script_gid = match spec.script_group.as_deref().map(lookup_group).transpose() {
            Ok(gid) => gid,
            Err(e) => {
                log::log_server(s, ffi::APLOG_ERR, &format!("{}: daemon process group '{}': script-group: {e}", codes::DAEMON_UNAVAILABLE, spec.name));
                broken.push(spec.name.clone());
                continue;
            }
        };
        if sock_owner.uid != apache.uid {
            // The other user must reach the socket inside Apache's private directory.
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711));
        }
        let listener = match listen(&path, &spec, &sock_owner) {
            Ok(fd) => fd,
            Err(e) => {
                log::log_server(s, ffi::APLOG_ERR, &format!("{}: daemon process group '{}': {e}", codes::DAEMON_UNAVAILABLE, spec.name));
                broken.push(spec.name.clone());
                continue;
            }
        };
        let mut secret = [0u8; crate::protocol::SECRET_LEN];
        if let Err(e) = crate::daemon::random_bytes(&mut secret) {
            log::log_server(s, ffi::APLOG_ERR, &format!("{}: cannot read the OS random source: {e}", codes::DAEMON_UNAVAILABLE));
            return;
        }
        log::log_server(s, ffi::APLOG_INFO, &format!("Daemon process group '{}' listens on '{path}'.", spec.name));
        let imports: Vec<(String, String)> = with_global(|g| {
            g.imports
                .iter()
                .filter(|i| matches!(&i.process_group, crate::config::GroupSpec::Named(n) if *n == spec.name))
                .map(|i| (i.script.clone(), crate::config::fixed_group_name(&i.application_group)))
                .collect()
        });
        let board = match crate::daemon::board::shared(spec.processes) {
            Ok(b) => b,
            Err(e) => {
                log::log_server(s, ffi::APLOG_ERR, &format!("{}: daemon process group '{}' cannot be set up: shared memory for its capacity board: {e}", codes::DAEMON_UNAVAILABLE, spec.name));
                continue;
            }
        };
        groups.push(Arc::new(GroupRuntime {
            board,
            spec,
            listener: Mutex::new(Some(listener)),
            socket_path: path,
            secret,
            apache_uid: sock_owner.uid,
            script_uid,
            script_gid,
            supplementary_gids,
            uid: ids.uid,
            gid: ids.gid,
            user_name: ids.name,
            apache_version: (
                ffi::AP_SERVER_MAJORVERSION_NUMBER as u32,
                ffi::AP_SERVER_MINORVERSION_NUMBER as u32,
                ffi::AP_SERVER_PATCHLEVEL_NUMBER as u32,
            ),
            apache_mpm: super::hooks::mpm_info(),
            imports,
            global_python_home: with_global(|g| g.python_home.clone()),
            allow_stdin: !with_global(|g| g.restrict_stdin.unwrap_or(true)),
            restrict_stdout: with_global(|g| g.restrict_stdout.unwrap_or(false)),
            python: with_global(|g| g.python.clone()),
        }));
    }
    let n = groups.len();
    *BROKEN.lock().unwrap_or_else(|e| e.into_inner()) = broken;
    *GROUPS.lock().unwrap_or_else(|e| e.into_inner()) = groups;
    MANAGERS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    // SAFETY: registering a cleanup on the live configuration pool.
    unsafe { ffi::apr_pool_cleanup_register(pconf, std::ptr::null(), Some(stop_managers), Some(ffi::apr_pool_cleanup_null)) };
    for i in 0..n {
        if let Some(pid) = fork_manager(i) {
            // SAFETY: pconf is live.
            unsafe { watch(pconf, i, pid) };
        }
    }
}
