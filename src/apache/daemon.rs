//! Daemon mode in the Apache parent: one listening socket and one group manager per
//! WSGIDaemonProcess, created per configuration generation, supervised with APR's other-child
//! API and stopped when the configuration pool is cleared (restart or stop).

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::cfg::{self, with_global};
use super::ffi;
use super::log;
use crate::codes;
use crate::config::DaemonProcess;
use crate::daemon::{GroupRuntime, manager};

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
        // SAFETY: the child's copy of a descriptor it must not use.
        unsafe { libc::close(g.listen_fd) };
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
fn apache_ids() -> Ids {
    // SAFETY: ap_unixd_config is filled while the configuration is read and only read here.
    unsafe {
        let u = &*(&raw const ffi::ap_unixd_config);
        let name = if u.user_name.is_null() { String::new() } else { CStr::from_ptr(u.user_name).to_string_lossy().into_owned() };
        if libc::geteuid() != 0 {
            return Ids { uid: libc::geteuid(), gid: libc::getegid(), name };
        }
        Ids { uid: u.user_id, gid: u.group_id, name }
    }
}

fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let cname = c(name);
    // SAFETY: getpwnam returns a pointer to static storage (the parent is single-threaded).
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return Err(format!("user '{name}' does not exist"));
    }
    // SAFETY: pw is non-null and points at a passwd record.
    unsafe { Ok(((*pw).pw_uid, (*pw).pw_gid)) }
}

fn lookup_group(name: &str) -> Result<u32, String> {
    let cname = c(name);
    // SAFETY: as lookup_user.
    let gr = unsafe { libc::getgrnam(cname.as_ptr()) };
    if gr.is_null() {
        return Err(format!("group '{name}' does not exist"));
    }
    // SAFETY: gr is non-null.
    Ok(unsafe { (*gr).gr_gid })
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

/// Creates the group's listening socket: only Apache's user may connect.
fn listen(path: &str, backlog: u32, owner: &Ids) -> Result<RawFd, String> {
    if path.len() >= 108 {
        return Err(format!("the socket path '{path}' is too long for a Unix socket (108 bytes); set a shorter WSGISocketPrefix"));
    }
    let cpath = c(path);
    // SAFETY: plain socket syscalls on descriptors we own; the sockaddr is built within its size.
    unsafe {
        libc::unlink(cpath.as_ptr());
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(format!("socket(): {}", std::io::Error::last_os_error()));
        }
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (i, b) in path.bytes().enumerate() {
            addr.sun_path[i] = b as libc::c_char;
        }
        let old = libc::umask(0o177);
        let rc = libc::bind(fd, (&raw const addr).cast(), std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t);
        libc::umask(old);
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(format!("cannot bind '{path}': {e}"));
        }
        if libc::geteuid() == 0 {
            libc::chown(cpath.as_ptr(), owner.uid, owner.gid);
        }
        libc::chmod(cpath.as_ptr(), 0o600);
        if libc::listen(fd, backlog.max(1) as i32) != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(format!("cannot listen on '{path}': {e}"));
        }
        Ok(fd)
    }
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
        let mut template = *b"/tmp/mod_wsgi.XXXXXX\0";
        // SAFETY: mkdtemp rewrites the X's of our NUL-terminated buffer in place.
        let made = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
        if made.is_null() {
            return Err(format!("cannot create a socket directory under /tmp: {}", std::io::Error::last_os_error()));
        }
        let short = String::from_utf8_lossy(&template[..template.len() - 1]).into_owned();
        // SAFETY: ap_server_conf is set before any hook runs.
        log::log_server(unsafe { ffi::ap_server_conf }, ffi::APLOG_INFO, &format!(
            "the socket directory '{dir}' is too long for Unix socket paths; using '{short}' instead (set WSGISocketPrefix to choose)"
        ));
        dir = short;
    }
    let cdir = c(&dir);
    // SAFETY: mkdir/chown/chmod on a path we own.
    unsafe {
        if libc::mkdir(cdir.as_ptr(), 0o700) != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
            return Err(format!(
                "cannot create the socket directory '{dir}': {}; set WSGISocketPrefix to a writable place such as /var/run/apache2/wsgi",
                std::io::Error::last_os_error()
            ));
        }
        if libc::geteuid() == 0 {
            libc::chown(cdir.as_ptr(), owner.uid, owner.gid);
        }
        libc::chmod(cdir.as_ptr(), 0o700);
    }
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
    // SAFETY: the Apache parent has no other threads, so fork is safe; the child never returns
    // into Apache (manager_main ends with _exit).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        super::log::install();
        // SAFETY: closing descriptors this child must not keep: Apache's listeners and the
        // other groups' sockets.
        unsafe {
            for fd in listeners {
                libc::close(fd);
            }
            for g in &groups {
                if g.listen_fd != rt.listen_fd {
                    libc::close(g.listen_fd);
                }
            }
        }
        // A panic must never unwind back into the Apache code this process was forked from.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| manager::manager_main(rt)));
        // SAFETY: leaving the forked child without running Apache's exit handlers.
        unsafe { libc::_exit(1) };
    }
    if pid < 0 {
        // SAFETY: ap_server_conf is valid in the parent after configuration.
        log::log_server(unsafe { ffi::ap_server_conf }, ffi::APLOG_ERR, &format!("{}: cannot fork the manager of daemon process group '{}': {}", codes::DAEMON_EXITED, rt.spec.name, std::io::Error::last_os_error()));
        return None;
    }
    Some(pid)
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
            // SAFETY: signalling our own children.
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
        let mut left: Vec<libc::pid_t> = pids.into_iter().filter(|p| *p > 0).collect();
        while !left.is_empty() && std::time::Instant::now() < deadline {
            left.retain(|&p| {
                // SAFETY: reaping our own child; ECHILD (already reaped by the MPM) ends the wait.
                let r = unsafe { libc::waitpid(p, std::ptr::null_mut(), libc::WNOHANG) };
                r == 0
            });
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for p in left {
            // SAFETY: as above.
            unsafe {
                libc::kill(p, libc::SIGKILL);
                libc::waitpid(p, std::ptr::null_mut(), 0);
            }
        }
        let groups = std::mem::take(&mut *GROUPS.lock().unwrap_or_else(|e| e.into_inner()));
        for g in groups {
            let path = c(&g.socket_path);
            // SAFETY: closing our listening socket and removing its path and (if now empty) its
            // directory.
            unsafe {
                libc::close(g.listen_fd);
                libc::unlink(path.as_ptr());
                if let Some(dir) = std::path::Path::new(&g.socket_path).parent() {
                    let d = c(&dir.to_string_lossy());
                    libc::rmdir(d.as_ptr());
                }
            }
        }
    });
    0
}

/// Creates every daemon group of this configuration generation and starts its manager.
/// Runs at most once per generation (called from pre_mpm at first start, post_config after).
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
        let fd = match listen(&path, spec.listen_backlog, &apache) {
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
        groups.push(Arc::new(GroupRuntime {
            spec,
            listen_fd: fd,
            socket_path: path,
            secret,
            apache_uid: apache.uid,
            uid: ids.uid,
            gid: ids.gid,
            user_name: ids.name,
            apache_version: (
                ffi::AP_SERVER_MAJORVERSION_NUMBER as u32,
                ffi::AP_SERVER_MINORVERSION_NUMBER as u32,
                ffi::AP_SERVER_PATCHLEVEL_NUMBER as u32,
            ),
            imports,
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
