//! The group manager: one small process per WSGIDaemonProcess group, forked from the Apache
//! parent. It has no Python and no threads, so it can fork safely; it starts the group's worker
//! processes, replaces one at once when it says it is restarting (so the old one drains while the
//! new one starts), restarts crashed ones with back-off, and stops them all when Apache stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::GroupRuntime;
use super::control::backoff;
use super::worker::{self, SHUTDOWN};
use crate::sys;

/// A worker that lived shorter than this counts as a failed start.
const FAILED_START: Duration = Duration::from_secs(5);

struct Slot {
    pid: Option<libc::pid_t>,
    started: Instant,
    failures: u32,
    respawn_at: Option<Instant>,
}

/// Shows `name` as the process's command line (`ps`) and name (`top`, 15 characters), in full
/// whatever the length of Apache's own argv[0] (see [`sys::process::set_title`]).
pub fn set_title(name: &str) {
    sys::process::set_title(name);
}

fn drop_privileges(rt: &GroupRuntime) -> Result<(), String> {
    if sys::process::euid() != 0 {
        return Ok(());
    }
    let user = CString::new(rt.user_name.clone()).map_err(|_| "bad user name".to_string())?;
    if rt.supplementary_gids.is_empty() {
        if sys::process::init_groups(&user, rt.gid).is_err() {
            if let Err(e) = sys::process::clear_groups() {
                return Err(format!("cannot set supplementary groups: {e}"));
            }
        }
    } else {
        // The user's own groups plus supplementary-groups=.
        let mut gids = sys::process::group_list(&rt.user_name, rt.gid).unwrap_or_else(|_| vec![rt.gid]);
        for g in &rt.supplementary_gids {
            if !gids.contains(g) {
                gids.push(*g);
            }
        }
        if let Err(e) = sys::process::set_groups(&gids) {
            return Err(format!("cannot set supplementary groups {gids:?}: {e}"));
        }
    }
    if let Err(e) = sys::process::set_gid(rt.gid) {
        return Err(format!("cannot switch to gid {}: {e}", rt.gid));
    }
    if let Err(e) = sys::process::set_uid(rt.uid) {
        return Err(format!("cannot switch to uid {}: {e}", rt.uid));
    }
    Ok(())
}

/// The manager's end of the pipe its workers write "replace me" notes to, and the workers' end.
struct ControlPipe {
    read: OwnedFd,
    write: OwnedFd,
}

fn spawn(rt: &Arc<GroupRuntime>, pipe: &ControlPipe) -> Option<libc::pid_t> {
    // The manager is single-threaded (sys::process::fork checks), and the child never returns
    // into the manager's loop: it runs the worker, which ends with _exit.
    let forked = sys::process::fork([pipe.read.as_fd(), pipe.write.as_fd()], |[read, write]| -> Infallible {
        // Our copy of the manager's read end.
        drop(read);
        worker::worker_main(rt.clone(), write)
    });
    match forked {
        Ok(pid) => Some(pid),
        Err(e) => {
            tracing::error!(target: "wsgi", "daemon process group '{}' cannot fork a process: {e}", rt.spec.name);
            None
        }
    }
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
    let _ = sys::process::set_own_process_group();
    let _ = sys::process::set_parent_death_signal(libc::SIGTERM);
    worker::install_signals();
    crate::daemon::worker::SHUTDOWN.store(false, Ordering::SeqCst);
    let spec = &rt.spec;
    let title = spec.display_name.clone().unwrap_or_else(|| format!("(wsgi:{})", spec.name));
    set_title(&title);
    // chroot=: while still root; Python and the application must be inside the new root.
    if let Some(dir) = &spec.chroot {
        if let Err(e) = sys::process::chroot(dir) {
            tracing::error!(target: "wsgi", "daemon process group '{}': cannot chroot to '{dir}': {e}; chroot= needs Apache started as root", spec.name);
            std::thread::sleep(Duration::from_secs(5));
            sys::process::exit_now(1);
        }
    }
    if let Err(e) = drop_privileges(&rt) {
        tracing::error!(target: "wsgi", "daemon process group '{}': {e}; check user= and group= of WSGIDaemonProcess", spec.name);
        std::thread::sleep(Duration::from_secs(5));
        // Leaving without Apache's exit handlers.
        sys::process::exit_now(1);
    }
    if let Some(m) = spec.umask {
        sys::process::umask(m as libc::mode_t);
    }
    let _ = std::env::set_current_dir(spec.home.as_deref().unwrap_or("/"));
    let pipe = match sys::fd::pipe(libc::O_CLOEXEC | libc::O_NONBLOCK) {
        Ok((read, write)) => ControlPipe { read, write },
        Err(_) => {
            tracing::error!(target: "wsgi", "daemon process group '{}' cannot create its control pipe", spec.name);
            sys::process::exit_now(1);
        }
    };
    tracing::info!(target: "wsgi", "Starting daemon process group '{}' (manager pid {}) with {} process(es) of {} thread(s), uid={}, gid={}.", spec.name, std::process::id(), spec.processes, spec.threads, rt.uid, rt.gid);

    let now = Instant::now();
    let mut slots: Vec<Slot> = (0..spec.processes.max(1)).map(|_| Slot { pid: None, started: now, failures: 0, respawn_at: Some(now) }).collect();
    // Processes that asked to be replaced and are draining: pid -> slot.
    let mut retiring: HashMap<libc::pid_t, usize> = HashMap::new();
    let parent = sys::process::parent_pid();

    loop {
        // A new parent means Apache is gone.
        if SHUTDOWN.load(Ordering::SeqCst) || sys::process::parent_pid() != parent {
            break;
        }
        // Start whatever is due.
        let now = Instant::now();
        for s in slots.iter_mut() {
            if s.pid.is_none() && s.respawn_at.is_some_and(|t| t <= now) {
                s.pid = spawn(&rt, &pipe);
                s.started = now;
                s.respawn_at = if s.pid.is_some() { None } else { Some(now + Duration::from_secs(1)) };
            }
        }
        // Wait for a "replace me" note or a timeout.
        let _ = sys::fd::wait_readable(pipe.read.as_fd(), Duration::from_millis(100));
        let mut buf = [0u8; 4];
        // 4-byte pids, written atomically by workers.
        while matches!(sys::fd::read(pipe.read.as_fd(), &mut buf), Ok(4)) {
            let pid = i32::from_ne_bytes(buf);
            if let Some(i) = slots.iter().position(|s| s.pid == Some(pid)) {
                retiring.insert(pid, i);
                let s = &mut slots[i];
                s.pid = spawn(&rt, &pipe);
                s.started = Instant::now();
                s.failures = 0;
                s.respawn_at = if s.pid.is_some() { None } else { Some(Instant::now() + Duration::from_secs(1)) };
            }
        }
        // Reap.
        while let Ok(Some((pid, status))) = sys::process::waitpid(-1, libc::WNOHANG) {
            // A process that got as far as serving (it took a slot on the capacity board) did
            // not fail to start, however soon it died: it is replaced at once.
            let was_serving = rt.board.snapshot().iter().any(|(p, _)| *p == pid);
            // Its threads are gone: nothing may be reserved on it any more.
            rt.board.release(pid);
            if retiring.remove(&pid).is_some() {
                continue;
            }
            if let Some(s) = slots.iter_mut().find(|s| s.pid == Some(pid)) {
                s.pid = None;
                let quick = !was_serving && s.started.elapsed() < FAILED_START;
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
        let _ = sys::process::kill(p, libc::SIGTERM);
    }
    let deadline = Instant::now() + spec.shutdown_timeout + Duration::from_millis(500);
    let mut left: Vec<libc::pid_t> = pids;
    while !left.is_empty() && Instant::now() < deadline {
        // Still running: waitpid says no change (an error or an exit drops it from the list).
        left.retain(|&p| matches!(sys::process::waitpid(p, libc::WNOHANG), Ok(None)));
        std::thread::sleep(Duration::from_millis(20));
    }
    for &p in &left {
        let _ = sys::process::kill(p, libc::SIGKILL);
        let _ = sys::process::waitpid(p, 0);
    }
    // Leaving without Apache's exit handlers.
    sys::process::exit_now(0)
}
