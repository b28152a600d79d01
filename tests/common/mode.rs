//! Embedded and daemon mode, for test suites written once and run in both, in the style of
//! tokio's `tests/rt_common.rs`: [`mode_suite!`] takes the suite's items and emits them twice,
//! as `mod embedded` and `mod daemon`, each with a constant `MODE` the tests read.
//!
//! A [`Mode`] knows the MPMs a suite runs under, the configuration every server of that mode
//! starts with ([`Mode::preamble`]: nothing in embedded mode, a daemon process group in daemon
//! mode) and the checks made when a server stops ([`Mode::stop`]).

use super::*;
use std::collections::HashMap;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Applications run in the Apache children.
    Embedded,
    /// Applications run in the daemon process group [`DAEMON_GROUP`] (see [`Mode::preamble`]).
    Daemon,
}

/// The daemon process group of [`Mode::Daemon`]'s preamble.
pub const DAEMON_GROUP: &str = "g";

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Embedded, Mode::Daemon];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Daemon => "daemon",
        }
    }

    /// The MPMs every test of a suite runs under: all three, in both modes (in daemon mode the
    /// MPM is the Apache side of the relay: threaded or not).
    pub fn mpms(self) -> [Mpm; 3] {
        Mpm::ALL
    }

    /// Configuration that comes before a suite's own: nothing in embedded mode; in daemon mode
    /// `WSGIDaemonProcess g processes=1 threads=4` and `WSGIProcessGroup g`, so every mount
    /// runs in group `g` unless it names another with `process-group=`.
    pub fn preamble(self) -> String {
        self.preamble_with("processes=1 threads=4")
    }

    /// [`Mode::preamble`] with other `WSGIDaemonProcess` options for group `g`.
    pub fn preamble_with(self, daemon_options: &str) -> String {
        match self {
            Mode::Embedded => String::new(),
            Mode::Daemon => format!(
                "WSGIDaemonProcess {DAEMON_GROUP} {daemon_options}\nWSGIProcessGroup {DAEMON_GROUP}\n"
            ),
        }
    }

    /// `environ['mod_wsgi.process_group']` of a request served under the preamble.
    pub fn process_group(self) -> &'static str {
        match self {
            Mode::Embedded => "",
            Mode::Daemon => DAEMON_GROUP,
        }
    }

    /// A builder for our module under `mpm` with the preamble.
    pub fn builder(self, mpm: Mpm) -> ApacheBuilder {
        ApacheBuilder::new().mpm(mpm).conf(&self.preamble())
    }

    /// Stops the server and checks that it went cleanly: no crash in the error log, and no
    /// process of the server (Apache children, daemon group managers and daemon processes, in
    /// whatever process group they are) outlives it. In daemon mode the group's daemon
    /// processes must have been running (the requests really went to a daemon).
    pub fn stop(self, a: Apache) -> Stopped {
        let mpm = a.mpm;
        let procs = server_processes(&a);
        if self == Mode::Daemon {
            let title = format!("(wsgi:{DAEMON_GROUP})");
            if !procs.iter().any(|p| p.cmdline == title) {
                a.fail(&format!("[{self} {mpm}] no daemon process of group {DAEMON_GROUP}: {procs:#?}"));
            }
        }
        let st = a.stop();
        assert!(!st.has_crash(), "[{self} {mpm}] crash in the error log:\n{}", st.error_log);
        // A daemon group manager gives its processes shutdown-timeout (5 s by default) and
        // half a second more before it kills them.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<&ServerProc> = procs.iter().filter(|p| p.alive()).collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "[{self} {mpm}] processes outlived Apache: {left:#?}\n--- error.log ---\n{}",
                    st.error_log
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        st
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The suite's items twice: in `mod embedded` with `const MODE: Mode = Mode::Embedded` and in
/// `mod daemon` with `const MODE: Mode = Mode::Daemon`; both `use super::*`. Tests named
/// `x` are then run as `embedded::x` and `daemon::x`.
#[allow(unused_macros)]
macro_rules! mode_suite {
    ($($suite:tt)*) => {
        /// The suite in embedded mode: the applications run in the Apache children.
        mod embedded {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            const MODE: $crate::common::mode::Mode = $crate::common::mode::Mode::Embedded;
            $($suite)*
        }
        /// The suite in daemon mode: the applications run in daemon process groups.
        mod daemon {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            const MODE: $crate::common::mode::Mode = $crate::common::mode::Mode::Daemon;
            $($suite)*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use mode_suite;

// ---------------------------------------------------------------------------------------------
// The server's processes
// ---------------------------------------------------------------------------------------------

/// One process of a server, identified by pid and start time (so a reused pid is not taken
/// for it).
#[derive(Clone, Debug)]
pub struct ServerProc {
    pub pid: i32,
    pub ppid: i32,
    /// `/proc/<pid>/cmdline` with NULs replaced by spaces (`(wsgi:<group>)` for a daemon
    /// process).
    pub cmdline: String,
    start_time: u64,
}

impl ServerProc {
    /// Still running (not a zombie) and still the same process.
    pub fn alive(&self) -> bool {
        match read_proc(self.pid) {
            Some(p) => p.start_time == self.start_time && !p.zombie,
            None => false,
        }
    }

    /// A daemon process (its title is `(wsgi:<group>)`).
    pub fn is_daemon(&self) -> bool {
        self.cmdline.starts_with("(wsgi:")
    }
}

struct ProcStat {
    ppid: i32,
    zombie: bool,
    start_time: u64,
}

fn read_proc(pid: i32) -> Option<ProcStat> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    // stime cutime cstime priority nice num_threads itrealvalue starttime ...
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some(ProcStat {
        zombie: rest.first()? == &"Z",
        ppid: rest.get(1)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

/// The Apache parent of `a` and every process descending from it, wherever their process
/// group (daemon processes may live in one of their own, so `Apache::processes` misses them).
pub fn server_processes(a: &Apache) -> Vec<ServerProc> {
    let mut all = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else { return all };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Some(st) = read_proc(pid) else { continue };
        if st.zombie {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim_end().to_string())
            .unwrap_or_default();
        all.push(ServerProc { pid, ppid: st.ppid, cmdline, start_time: st.start_time });
    }
    let parent_of: HashMap<i32, i32> = all.iter().map(|p| (p.pid, p.ppid)).collect();
    let root = a.pid();
    let descends = |mut p: i32| {
        for _ in 0..16 {
            if p == root {
                return true;
            }
            match parent_of.get(&p) {
                Some(&pp) if pp > 1 => p = pp,
                _ => return false,
            }
        }
        false
    };
    all.retain(|p| descends(p.pid));
    all.sort_by_key(|p| p.pid);
    all
}

/// Pids of the processes of daemon group `group`, its manager and its daemon processes
/// (process title `(wsgi:<group>)`).
pub fn daemon_pids(a: &Apache, group: &str) -> Vec<String> {
    let title = format!("(wsgi:{group})");
    server_processes(a).into_iter().filter(|p| p.cmdline == title).map(|p| p.pid.to_string()).collect()
}

/// Pids of the Apache children of `a` (its parent's children other than daemon group
/// managers).
pub fn apache_child_pids(a: &Apache) -> Vec<String> {
    let root = a.pid();
    server_processes(a)
        .into_iter()
        .filter(|p| p.ppid == root && !p.is_daemon())
        .map(|p| p.pid.to_string())
        .collect()
}
