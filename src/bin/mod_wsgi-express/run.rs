//! Running Apache in the foreground and stopping it with everything it started.
//!
//! Apache runs in a session of its own (setsid), so Ctrl-C in the terminal reaches only this
//! program, which forwards a stop; and so every process Apache starts — children, the daemon
//! process groups' managers (which make process groups of their own) and their workers — can
//! be found afterwards by session id and none is left behind. This program is also the
//! subreaper of them all, and Apache dies with it (parent-death signal) if it is killed.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::conf;
use crate::plan::{APACHE_BIN, Plan};
use crate::os;

/// How long Apache gets to stop (its daemon processes get shutdown-timeout, 5 s, of that).
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How long processes left in the session after Apache exited get before SIGKILL.
const STRAGGLER_GRACE: Duration = Duration::from_secs(3);

/// Runs Apache until it exits or we are told to stop; returns the exit code for this program.
pub fn run(plan: &Plan) -> Result<i32, String> {
    os::catch_signals();
    os::become_subreaper();
    let conf = conf::httpd_conf_path(plan);
    let mut cmd = Command::new(APACHE_BIN);
    cmd.arg("-f").arg(&conf).arg("-DFOREGROUND").current_dir(&plan.working_dir);
    if let Some(lang) = conf::embedded_lang(plan) {
        cmd.env("LANG", lang);
    }
    os::in_own_session(&mut cmd);
    let child = cmd.spawn().map_err(|e| format!("cannot start {APACHE_BIN}: {e}"))?;
    let pid = child.id() as i32;
    // Reaped below with waitpid(-1): we are the subreaper of everything Apache starts.
    drop(child);

    let mut stop_deadline: Option<Instant> = None;
    let mut asked_to_stop = false;
    let status = loop {
        let mut apache_status = None;
        while let Some((p, st)) = os::reap_any() {
            if p == pid {
                apache_status = Some(st);
            }
        }
        if let Some(st) = apache_status {
            break st;
        }
        for sig in os::take_signals() {
            if sig == libc::SIGUSR1 {
                // A graceful restart, like apachectl graceful.
                os::kill(pid, libc::SIGUSR1);
                continue;
            }
            if asked_to_stop {
                // A second Ctrl-C: no more waiting.
                kill_session(pid, libc::SIGKILL);
            } else {
                asked_to_stop = true;
                os::kill(pid, libc::SIGTERM);
                stop_deadline = Some(Instant::now() + STOP_GRACE);
            }
        }
        if stop_deadline.is_some_and(|d| Instant::now() > d) {
            crate::err_line(&format!("mod_wsgi-express: Apache did not stop within {}s; killing it", STOP_GRACE.as_secs()));
            kill_session(pid, libc::SIGKILL);
            stop_deadline = None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };

    // Whatever Apache left in its session (a daemon process slow to exit, a process the
    // application started) is stopped too.
    let deadline = Instant::now() + STRAGGLER_GRACE;
    let mut termed = false;
    loop {
        while os::reap_any().is_some() {}
        let left = os::session_processes(pid);
        if left.is_empty() {
            break;
        }
        if !termed {
            for p in &left {
                os::kill(p.pid, libc::SIGTERM);
            }
            termed = true;
        }
        if Instant::now() > deadline {
            let names: Vec<String> = left.iter().map(|p| format!("{} ({}, {})", p.pid, p.comm, p.state)).collect();
            crate::err_line(&format!("mod_wsgi-express: killing processes left after Apache stopped: {}", names.join(", ")));
            kill_session(pid, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(100));
            while os::reap_any().is_some() {}
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    // Stopped on request: success, whatever status Apache's shutdown left.
    Ok(if asked_to_stop { 0 } else { os::exit_code(status) })
}

fn kill_session(sid: i32, sig: i32) {
    os::kill(sid, sig);
    for p in os::session_processes(sid) {
        os::kill(p.pid, sig);
    }
}
