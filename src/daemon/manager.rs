//! The group manager: one small process per WSGIDaemonProcess group, forked from the Apache
//! parent. It has no Python and no threads, so it can fork safely; it starts the group's worker
//! processes, replaces one at once when it says it is restarting (so the old one drains while the
//! new one starts), restarts crashed ones with back-off, and stops them all when Apache stops.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::GroupRuntime;
use super::control::backoff;
use super::worker::{self, SHUTDOWN};

/// A worker that lived shorter than this counts as a failed start.
const FAILED_START: Duration = Duration::from_secs(5);

struct Slot {
    pid: Option<libc::pid_t>,
    started: Instant,
    failures: u32,
    respawn_at: Option<Instant>,
}

/// Shows `name` as the process's command line (`ps`) and name (`top`, 15 characters).
///
/// The command line is the memory between the kernel's `arg_start` and `env_end` (read from
/// `/proc/self/stat`): the environment strings are copied elsewhere first, then the whole area is
/// overwritten, so a long name is shown in full whatever the length of Apache's own argv[0].
pub fn set_title(name: &str) {
    let Ok(c) = CString::new(name) else { return };
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return };
    let f: Vec<usize> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // After the ')' field 3 (state) is index 0: arg_start is field 48, env_end field 51.
    let (arg_start, env_end) = (f.get(45).copied().unwrap_or(0), f.get(48).copied().unwrap_or(0));
    if arg_start == 0 || env_end <= arg_start {
        return;
    }
    unsafe extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: single-threaded here. Each environment string that lives in the area is replaced
    // by a heap copy (leaked: the environment lives as long as the process), then the area —
    // which the kernel gave this process for its arguments and environment — is overwritten
    // within its bounds.
    unsafe {
        let mut e = environ;
        while !e.is_null() && !(*e).is_null() {
            let p = *e as usize;
            if p >= arg_start && p < env_end {
                *e = libc::strdup(*e);
            }
            e = e.add(1);
        }
        let area = std::slice::from_raw_parts_mut(arg_start as *mut u8, env_end - arg_start);
        let bytes = name.as_bytes();
        let n = bytes.len().min(area.len() - 1);
        area[..n].copy_from_slice(&bytes[..n]);
        for b in &mut area[n..] {
            *b = 0;
        }
    }
}

fn drop_privileges(rt: &GroupRuntime) -> Result<(), String> {
    // SAFETY: plain credential syscalls on this single-threaded process.
    unsafe {
        if libc::geteuid() != 0 {
            return Ok(());
        }
        let user = CString::new(rt.user_name.clone()).map_err(|_| "bad user name".to_string())?;
        if libc::initgroups(user.as_ptr(), rt.gid) != 0 && libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(format!("cannot set supplementary groups: {}", std::io::Error::last_os_error()));
        }
        if libc::setgid(rt.gid) != 0 {
            return Err(format!("cannot switch to gid {}: {}", rt.gid, std::io::Error::last_os_error()));
        }
        if libc::setuid(rt.uid) != 0 {
            return Err(format!("cannot switch to uid {}: {}", rt.uid, std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn spawn(rt: &Arc<GroupRuntime>, notify_w: RawFd, notify_r: RawFd) -> Option<libc::pid_t> {
    // SAFETY: the manager is single-threaded, so fork is safe; the child never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: closing our copy of the manager's read end.
        unsafe { libc::close(notify_r) };
        // A panic must never unwind back into the manager's loop in this process.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker::worker_main(rt.clone(), notify_w)));
        // SAFETY: leaving the forked child without running exit handlers.
        unsafe { libc::_exit(1) };
    }
    if pid < 0 {
        tracing::error!(target: "wsgi", "daemon process group '{}' cannot fork a process: {}", rt.spec.name, std::io::Error::last_os_error());
        return None;
    }
    Some(pid)
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit status {}", libc::WEXITSTATUS(status))
    }
}

/// Runs the manager of one group; never returns.
pub fn manager_main(rt: Arc<GroupRuntime>) -> ! {
    // SAFETY: process-attribute syscalls on this fresh single-threaded child.
    unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    worker::install_signals();
    crate::daemon::worker::SHUTDOWN.store(false, Ordering::SeqCst);
    let spec = &rt.spec;
    let title = spec.display_name.clone().unwrap_or_else(|| format!("(wsgi:{})", spec.name));
    set_title(&title);
    if let Err(e) = drop_privileges(&rt) {
        tracing::error!(target: "wsgi", "daemon process group '{}': {e}; check user= and group= of WSGIDaemonProcess", spec.name);
        std::thread::sleep(Duration::from_secs(5));
        // SAFETY: leaving without Apache's exit handlers.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: umask/chdir only change this process's attributes.
    unsafe {
        if let Some(m) = spec.umask {
            libc::umask(m as libc::mode_t);
        }
        let home = spec.home.clone().unwrap_or_else(|| "/".into());
        if let Ok(h) = CString::new(home) {
            libc::chdir(h.as_ptr());
        }
    }
    let mut pipe = [0 as RawFd; 2];
    // SAFETY: pipe2 fills our two-element array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        tracing::error!(target: "wsgi", "daemon process group '{}' cannot create its control pipe", spec.name);
        unsafe { libc::_exit(1) };
    }
    let (notify_r, notify_w) = (pipe[0], pipe[1]);
    tracing::info!(target: "wsgi", "Starting daemon process group '{}' (manager pid {}) with {} process(es) of {} thread(s), uid={}, gid={}.", spec.name, std::process::id(), spec.processes, spec.threads, rt.uid, rt.gid);

    let now = Instant::now();
    let mut slots: Vec<Slot> = (0..spec.processes.max(1)).map(|_| Slot { pid: None, started: now, failures: 0, respawn_at: Some(now) }).collect();
    // Processes that asked to be replaced and are draining: pid -> slot.
    let mut retiring: HashMap<libc::pid_t, usize> = HashMap::new();
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };

    loop {
        // SAFETY: getppid has no preconditions. A new parent means Apache is gone.
        if SHUTDOWN.load(Ordering::SeqCst) || unsafe { libc::getppid() } != parent {
            break;
        }
        // Start whatever is due.
        let now = Instant::now();
        for s in slots.iter_mut() {
            if s.pid.is_none() && s.respawn_at.is_some_and(|t| t <= now) {
                s.pid = spawn(&rt, notify_w, notify_r);
                s.started = now;
                s.respawn_at = if s.pid.is_some() { None } else { Some(now + Duration::from_secs(1)) };
            }
        }
        // Wait for a "replace me" note or a timeout.
        let mut pfd = libc::pollfd { fd: notify_r, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        let mut buf = [0u8; 4];
        // SAFETY: reads 4-byte pids written atomically by workers.
        while unsafe { libc::read(notify_r, buf.as_mut_ptr().cast(), 4) } == 4 {
            let pid = i32::from_ne_bytes(buf);
            if let Some(i) = slots.iter().position(|s| s.pid == Some(pid)) {
                retiring.insert(pid, i);
                let s = &mut slots[i];
                s.pid = spawn(&rt, notify_w, notify_r);
                s.started = Instant::now();
                s.failures = 0;
                s.respawn_at = if s.pid.is_some() { None } else { Some(Instant::now() + Duration::from_secs(1)) };
            }
        }
        // Reap.
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own children.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if retiring.remove(&pid).is_some() {
                continue;
            }
            if let Some(s) = slots.iter_mut().find(|s| s.pid == Some(pid)) {
                s.pid = None;
                let quick = s.started.elapsed() < FAILED_START;
                s.failures = if quick { s.failures + 1 } else { 0 };
                let delay = backoff(s.failures);
                tracing::warn!(target: "wsgi", "{}: daemon process '{}' (pid {pid}) died ({}); starting a new one{}.", crate::codes::DAEMON_EXITED, spec.name, describe(status), if delay.is_zero() { String::new() } else { format!(" in {}s (it failed {} time(s) in a row)", delay.as_secs(), s.failures) });
                s.respawn_at = Some(Instant::now() + delay);
            }
        }
    }

    // Shutdown: ask every worker to finish, then insist.
    tracing::info!(target: "wsgi", "Stopping daemon process group '{}'.", spec.name);
    let pids: Vec<libc::pid_t> = slots.iter().filter_map(|s| s.pid).chain(retiring.keys().copied()).collect();
    for &p in &pids {
        // SAFETY: signalling our own children.
        unsafe { libc::kill(p, libc::SIGTERM) };
    }
    let deadline = Instant::now() + spec.shutdown_timeout + Duration::from_millis(500);
    let mut left: Vec<libc::pid_t> = pids;
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|&p| {
            let mut st = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(p, &mut st, libc::WNOHANG) == 0 }
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    for &p in &left {
        // SAFETY: as above.
        unsafe {
            libc::kill(p, libc::SIGKILL);
            libc::waitpid(p, std::ptr::null_mut(), 0);
        }
    }
    // SAFETY: leaving without Apache's exit handlers.
    unsafe { libc::_exit(0) }
}
