//! Daemon mode: how requests are dispatched to the processes of a group, and what happens when
//! every thread is busy (`queue-timeout`).
//!
//! * A request goes to a process with a free thread: after one process of a group was replaced,
//!   and whether or not the Apache children hold reused connections to the group, concurrent
//!   requests that fit in the group's threads all run at once; with one process saturated a
//!   quick request is answered at once by the other one.
//! * `queue-timeout`: a request that finds no free thread gets 504 about a second after the
//!   timeout expires (not when a thread frees up), with one coded log line naming the timeout
//!   and the group.
//!
//! Timing tests on a small (2-core) machine: the bounds are generous but each one separates the
//! right behaviour from the wrong one (a request that waited for a busy thread takes a whole
//! extra request duration). Every failure message prints the timings of every request.

mod common;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use common::apps::{log_mark, new_lines_with};
use common::{Apache, ApacheBuilder, Mpm, http_request};

// ---------------------------------------------------------------------------------------------
// The application and the servers
// ---------------------------------------------------------------------------------------------

/// `?sleep=S` sleeps S seconds; `?busy=S` also leaves a marker file `busy-<pid>-<thread>` in
/// `BUSY_DIR` while it sleeps, so the test can see which process runs how many long requests.
/// The body is the serving process's pid.
const APP: &str = r#"
import os, threading, time
BUSY_DIR = %BUSY_DIR%
def application(environ, start_response):
    args = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    if 'busy' in args:
        marker = os.path.join(BUSY_DIR, 'busy-%d-%d' % (os.getpid(), threading.get_ident()))
        open(marker, 'w').close()
        try:
            time.sleep(float(args['busy']))
        finally:
            os.unlink(marker)
    elif 'sleep' in args:
        time.sleep(float(args['sleep']))
    body = str(os.getpid()).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
"#;

/// Sizing per MPM: enough Apache workers for every concurrent request of these tests (up to 16
/// at once) without the MPM having to spawn children first. Under prefork each child holds
/// its own reused connections to the group.
fn sizing(mpm: Mpm) -> &'static str {
    match mpm {
        Mpm::Event | Mpm::Worker => {
            "StartServers 2\n\
             ServerLimit 4\n\
             ThreadsPerChild 16\n\
             MinSpareThreads 16\n\
             MaxSpareThreads 64\n\
             MaxRequestWorkers 64\n\
             MaxConnectionsPerChild 0\n"
        }
        Mpm::Prefork => {
            "StartServers 16\n\
             MinSpareServers 16\n\
             MaxSpareServers 24\n\
             ServerLimit 24\n\
             MaxRequestWorkers 24\n\
             MaxConnectionsPerChild 0\n"
        }
    }
}

/// A server under `mpm` with `WSGIDaemonProcess <group> <options>` and the application at
/// `/probe` in that group.
fn server(mpm: Mpm, group: &str, options: &str) -> Apache {
    let b = ApacheBuilder::new().mpm(mpm).mpm_config(sizing(mpm)).log_level("warn wsgi:info");
    let busy_dir = b.dir().join("tmp");
    let app = APP.replace("%BUSY_DIR%", &format!("{:?}", busy_dir.to_string_lossy()));
    b.script("probe.wsgi", &app)
        .conf("<Directory {dir}/scripts>\n  Require all granted\n</Directory>")
        .conf(&format!("WSGIDaemonProcess {group} {options}"))
        .conf(&format!("WSGIScriptAlias /probe {{dir}}/scripts/probe.wsgi process-group={group}"))
        .start()
}

// ---------------------------------------------------------------------------------------------
// Timed requests
// ---------------------------------------------------------------------------------------------

/// One request: when it was sent (after the common start), how long until its response was
/// read, and what came back.
#[derive(Clone, Debug)]
struct Timed {
    path: String,
    sent: Duration,
    took: Duration,
    status: u16,
    body: String,
    error: Option<String>,
}

impl Timed {
    fn pid(&self) -> &str {
        if self.status == 200 { self.body.trim() } else { "-" }
    }
}

impl fmt::Display for Timed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<18} sent +{:>5} ms  took {:>5} ms  -> ",
            self.path,
            self.sent.as_millis(),
            self.took.as_millis()
        )?;
        match &self.error {
            Some(e) => write!(f, "no response: {e}"),
            None if self.status == 200 => write!(f, "200 (pid {})", self.pid()),
            None => write!(f, "{}", self.status),
        }
    }
}

fn table(ts: &[Timed]) -> String {
    let mut s = String::new();
    for (i, t) in ts.iter().enumerate() {
        s.push_str(&format!("  #{i:<2} {t}\n"));
    }
    s
}

/// `GET path` on a fresh TCP connection (`Connection: close`), timed from just before the
/// connection is made until the whole response is read.
fn timed_get(a: &Apache, path: &str, t0: Instant) -> Timed {
    let start = Instant::now();
    let r = a.try_request(&http_request("GET", path, &[("Connection", "close")], b""));
    let took = start.elapsed();
    let sent = start.duration_since(t0);
    match r {
        Ok(r) => Timed { path: path.to_string(), sent, took, status: r.status, body: r.text(), error: None },
        Err(e) => Timed { path: path.to_string(), sent, took, status: 0, body: String::new(), error: Some(e) },
    }
}

/// Sends every path at once, each from its own thread on its own fresh connection (the threads
/// start together on a barrier), and returns the timings in the order of `paths`.
fn burst(a: &Apache, paths: &[String]) -> Vec<Timed> {
    let barrier = Barrier::new(paths.len());
    let t0 = Instant::now();
    thread::scope(|s| {
        let hs: Vec<_> = paths
            .iter()
            .map(|p| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    timed_get(a, p, t0)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn same(path: &str, n: usize) -> Vec<String> {
    vec![path.to_string(); n]
}

/// Pids of the processes serving the group (the application reports them), found by rounds of
/// eight concurrent 0.3 s requests until `want` distinct pids not in `exclude` answered. Panics
/// (with the error log) if that takes longer than 20 s.
fn serving_pids(a: &Apache, want: usize, exclude: &HashSet<String>) -> HashSet<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = HashSet::new();
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = burst(a, &same("/probe?sleep=0.3", 8));
        seen.extend(
            last.iter().filter(|t| t.status == 200 && !exclude.contains(t.pid())).map(|t| t.pid().to_string()),
        );
        if seen.len() >= want {
            return seen;
        }
    }
    a.fail(&format!(
        "[{}] the group did not answer from {want} processes (other than {exclude:?}) within 20 s: {seen:?}\n\
         last round:\n{}",
        a.mpm,
        table(&last)
    ))
}

/// Bursts of quick requests, so that the Apache children hold reused connections to the daemon
/// processes of the group: three rounds of 16 concurrent 50 ms requests (more than the group's
/// threads, so connections are opened to both processes). Every request must succeed, and
/// `pids` must all have served some of them.
fn warm_up_pooled_connections(a: &Apache, pids: &HashSet<String>) {
    let mut served = HashSet::new();
    let mut all = Vec::new();
    for _ in 0..3 {
        let ts = burst(a, &same("/probe?sleep=0.05", 16));
        served.extend(ts.iter().filter(|t| t.status == 200).map(|t| t.pid().to_string()));
        all.extend(ts);
    }
    if all.iter().any(|t| t.status != 200) {
        a.fail(&format!("[{}] warm-up requests failed:\n{}", a.mpm, table(&all)));
    }
    if !pids.is_subset(&served) {
        a.fail(&format!(
            "[{}] warm-up: not every daemon process {pids:?} served (served: {served:?}):\n{}",
            a.mpm,
            table(&all)
        ));
    }
}

/// The daemon process `pid` of the server gets SIGKILL (checked first: it must be a process of
/// this server other than the Apache parent, so nothing else is ever killed).
fn kill_9_daemon(a: &Apache, pid: &str) {
    let procs = common::mode::server_processes(a);
    if pid.parse() == Ok(a.pid()) || !procs.iter().any(|p| p.pid.to_string() == pid) {
        a.fail(&format!("pid {pid} is not a daemon process of this server: {procs:#?}"));
    }
    let st = std::process::Command::new("kill").args(["-9", pid]).status().unwrap();
    assert!(st.success(), "kill -9 {pid}");
}

/// Long requests (`?busy=`) running now, per daemon process pid.
fn busy_per_pid(a: &Apache) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in std::fs::read_dir(a.dir.join("tmp")).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("busy-") {
            let pid = rest.split('-').next().unwrap_or("").to_string();
            *m.entry(pid).or_insert(0) += 1;
        }
    }
    m
}

fn busy_total(a: &Apache) -> usize {
    busy_per_pid(a).values().sum()
}

/// Polls until at least `n` long requests run; returns whether they did within `timeout`.
fn wait_busy(a: &Apache, n: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if busy_total(a) >= n {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `group` appears in `line` as a word of its own (not inside another word such as "queue").
fn names_group(line: &str, group: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    line.match_indices(group).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + group.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// Every coded line of `log` that speaks of a timeout says which one (the option's name, e.g.
/// `queue-timeout`) and which process group.
fn timeout_lines_name_timeout_and_group(a: &Apache, log: &str, group: &str) {
    const OPTIONS: [&str; 9] = [
        "queue-timeout",
        "socket-timeout",
        "connect-timeout",
        "request-timeout",
        "graceful-timeout",
        "shutdown-timeout",
        "deadlock-timeout",
        "inactivity-timeout",
        "startup-timeout",
    ];
    for line in log.lines().filter(|l| l.contains("WR0") && l.to_ascii_lowercase().contains("timeout")) {
        if !OPTIONS.iter().any(|o| line.contains(o)) || !names_group(line, group) {
            a.fail(&format!(
                "a log line about a timeout must name the timeout (one of {OPTIONS:?}) and the group '{group}':\n{line}"
            ));
        }
    }
}

fn stop_cleanly(a: Apache) {
    let mpm = a.mpm;
    let st = a.stop();
    assert!(!st.has_crash(), "[{mpm}] crash in the error log:\n{}", st.error_log);
}

// ---------------------------------------------------------------------------------------------
// 1. After one process of the group was replaced, requests that fit in the group's threads all
//    run at once.
// ---------------------------------------------------------------------------------------------

/// `WSGIDaemonProcess probe processes=2 threads=4`: one process is killed with SIGKILL and
/// replaced; once the group answers from two processes again, six concurrent 2-second requests
/// (8 threads in all) must all be done within 2.5 s. With `pooled`, bursts of quick requests
/// first leave the Apache children holding reused connections to both processes.
fn six_requests_after_replacement(mpm: Mpm, pooled: bool) {
    let a = server(mpm, "probe", "processes=2 threads=4");
    let before = serving_pids(&a, 2, &HashSet::new());
    let victim = before.iter().min().unwrap().clone();
    let survivor = before.iter().find(|p| **p != victim).unwrap().clone();
    kill_9_daemon(&a, &victim);
    let after = serving_pids(&a, 2, &HashSet::from([victim.clone()]));
    assert!(after.contains(&survivor), "[{mpm}] the process that was not killed still serves: {after:?}");
    if pooled {
        warm_up_pooled_connections(&a, &after);
    }

    // Three rounds: how the Apache children's reused connections are spread over the two
    // processes varies from run to run, each round is another chance for a request to be sent
    // to a process whose threads are all busy.
    let mut report = format!(
        "[{mpm}{}] six concurrent 2 s requests on processes=2 threads=4 after pid {victim} was \
         replaced (serving now: {after:?}):\n",
        if pooled { ", pooled connections" } else { "" },
    );
    for round in 1..=3 {
        let ts = burst(&a, &same("/probe?sleep=2", 6));
        report.push_str(&format!("round {round}:\n{}", table(&ts)));
        println!("round {round}:\n{}", table(&ts));
        if ts.iter().any(|t| t.status != 200) {
            a.fail(&format!("every request succeeds\n{report}"));
        }
        if ts.iter().any(|t| t.took >= Duration::from_millis(2500)) {
            a.fail(&format!(
                "every request finishes within 2.5 s of being sent (none waits for a busy thread \
                 while others are free)\n{report}"
            ));
        }
        let pids: HashSet<&str> = ts.iter().map(|t| t.pid()).collect();
        assert_eq!(pids.len(), 2, "both processes served:\n{report}");
    }
    timeout_lines_name_timeout_and_group(&a, &a.error_log(), "probe");
    stop_cleanly(a);
}

#[test]
fn after_replacement_six_requests_run_at_once_event() {
    six_requests_after_replacement(Mpm::Event, false);
}

#[test]
fn after_replacement_six_requests_run_at_once_worker() {
    six_requests_after_replacement(Mpm::Worker, false);
}

#[test]
fn after_replacement_six_requests_run_at_once_prefork() {
    six_requests_after_replacement(Mpm::Prefork, false);
}

#[test]
fn after_replacement_six_requests_run_at_once_with_pooled_connections_event() {
    six_requests_after_replacement(Mpm::Event, true);
}

#[test]
fn after_replacement_six_requests_run_at_once_with_pooled_connections_worker() {
    six_requests_after_replacement(Mpm::Worker, true);
}

#[test]
fn after_replacement_six_requests_run_at_once_with_pooled_connections_prefork() {
    six_requests_after_replacement(Mpm::Prefork, true);
}

// ---------------------------------------------------------------------------------------------
// 2. With one process saturated by long requests, a quick request is answered at once by the
//    other.
// ---------------------------------------------------------------------------------------------

/// `processes=2 threads=4`, with reused connections to both processes in the Apache children:
/// 5-second requests are started (four at once, then one at a time) until one process runs
/// four of them (all its threads). Every one of them must start at once while threads are free;
/// then quick requests (three rounds of as many at once as the other process has free threads)
/// are each answered within 0.5 s, by the other process.
fn quick_request_beside_a_saturated_process(mpm: Mpm) {
    let a = server(mpm, "probe", "processes=2 threads=4");
    let pids = serving_pids(&a, 2, &HashSet::new());
    warm_up_pooled_connections(&a, &pids);

    let t0 = Instant::now();
    let (long, quick, busy, saturated) = thread::scope(|s| {
        let mut long = Vec::new();
        let spawn_long = |long: &mut Vec<_>| {
            let a = &a;
            long.push(s.spawn(move || timed_get(a, "/probe?busy=5", t0)));
        };
        for _ in 0..4 {
            spawn_long(&mut long);
        }
        // While some process has a free thread, each long request must start at once.
        let mut started = 4;
        let saturated = loop {
            let ok = wait_busy(&a, started, Duration::from_millis(1500));
            let busy = busy_per_pid(&a);
            if !ok {
                break Err(format!(
                    "only {} of {started} long requests started within 1.5 s though no process was \
                     saturated before the last one was sent: {busy:?}",
                    busy_total(&a)
                ));
            }
            if let Some((pid, _)) = busy.iter().find(|(_, n)| **n >= 4) {
                break Ok(pid.clone());
            }
            if started >= 7 {
                break Err(format!("7 long requests run and no process runs 4: {busy:?}"));
            }
            spawn_long(&mut long);
            started += 1;
        };
        let busy = busy_per_pid(&a);
        // A saturated process: quick requests now, in three rounds of as many concurrent
        // requests as the other process has free threads, each on a new connection (at most
        // 1.5 s in all when they are answered in time, so all are sent while the long requests
        // still run).
        let quick: Vec<Timed> = match &saturated {
            Ok(pid) => {
                let other: usize = busy.iter().filter(|(p, _)| *p != pid).map(|(_, n)| *n).sum();
                let free = 4usize.saturating_sub(other).max(1);
                let mut quick = Vec::new();
                for _ in 0..3 {
                    let barrier = Barrier::new(free);
                    let round: Vec<Timed> = thread::scope(|s2| {
                        let hs: Vec<_> = (0..free)
                            .map(|_| {
                                let (a, barrier) = (&a, &barrier);
                                s2.spawn(move || {
                                    barrier.wait();
                                    timed_get(a, "/probe", t0)
                                })
                            })
                            .collect();
                        hs.into_iter().map(|h| h.join().unwrap()).collect()
                    });
                    quick.extend(round);
                }
                quick
            }
            Err(_) => Vec::new(),
        };
        let long: Vec<Timed> = long.into_iter().map(|h| h.join().unwrap()).collect();
        (long, quick, busy, saturated)
    });
    let report = format!(
        "[{mpm}] long (5 s) requests running per pid when the quick ones were sent: {busy:?}\n\
         long requests:\n{}quick requests:\n{}",
        table(&long),
        table(&quick)
    );
    println!("{report}");
    let busy_pid = match saturated {
        Ok(pid) => pid,
        Err(why) => a.fail(&format!("{why}\n{report}")),
    };
    for q in &quick {
        if q.status != 200 || q.took >= Duration::from_millis(500) {
            a.fail(&format!("a quick request is answered within 0.5 s while process {busy_pid} is saturated\n{report}"));
        }
        if q.pid() == busy_pid {
            a.fail(&format!("the quick request was served by the saturated process {busy_pid}?\n{report}"));
        }
    }
    for l in &long {
        if l.status != 200 || l.took < Duration::from_millis(4900) || l.took > Duration::from_secs(8) {
            a.fail(&format!("every long request runs its 5 s and succeeds\n{report}"));
        }
    }
    timeout_lines_name_timeout_and_group(&a, &a.error_log(), "probe");
    stop_cleanly(a);
}

#[test]
fn quick_request_is_answered_beside_a_saturated_process_event() {
    quick_request_beside_a_saturated_process(Mpm::Event);
}

#[test]
fn quick_request_is_answered_beside_a_saturated_process_worker() {
    quick_request_beside_a_saturated_process(Mpm::Worker);
}

#[test]
fn quick_request_is_answered_beside_a_saturated_process_prefork() {
    quick_request_beside_a_saturated_process(Mpm::Prefork);
}

// ---------------------------------------------------------------------------------------------
// 3. queue-timeout: a request that finds no free thread gets 504 once the timeout expires.
// 4. The log line says which timeout and which group.
// ---------------------------------------------------------------------------------------------

/// `WSGIDaemonProcess q processes=1 threads=2 queue-timeout=1`: both threads run 4-second
/// requests; the next request gets 504 between 0.8 s and 2.2 s after it was sent, with exactly
/// one coded line that names `queue-timeout` and group `q`; the long requests still succeed and
/// a quick request afterwards gets 200.
fn queue_timeout_gives_504(mpm: Mpm) {
    let a = server(mpm, "q", "processes=1 threads=2 queue-timeout=1");
    let first = timed_get(&a, "/probe", Instant::now());
    assert_eq!(first.status, 200, "[{mpm}] {first}\n{}", a.error_log());

    let t0 = Instant::now();
    let (long, queued, mark) = thread::scope(|s| {
        let long: Vec<_> = (0..2).map(|_| s.spawn(|| timed_get(&a, "/probe?busy=4", t0))).collect();
        if !wait_busy(&a, 2, Duration::from_secs(3)) {
            a.fail(&format!("[{mpm}] the two long requests did not both start: {:?}", busy_per_pid(&a)));
        }
        let mark = log_mark(&a);
        let queued = timed_get(&a, "/probe", t0);
        let long: Vec<Timed> = long.into_iter().map(|h| h.join().unwrap()).collect();
        (long, queued, mark)
    });
    let after = timed_get(&a, "/probe", t0);
    thread::sleep(Duration::from_millis(300));
    let coded = new_lines_with(&a, mark, "WR0");
    let report = format!(
        "[{mpm}] processes=1 threads=2 queue-timeout=1\nlong (4 s) requests:\n{}queued request:\n{}\
         afterwards:\n{}coded log lines since the queued request was sent:\n{}\n",
        table(&long),
        table(std::slice::from_ref(&queued)),
        table(std::slice::from_ref(&after)),
        coded.join("\n")
    );
    println!("{report}");
    if queued.status != 504 {
        a.fail(&format!("the request that found no free thread gets 504\n{report}"));
    }
    if queued.took < Duration::from_millis(800) || queued.took > Duration::from_millis(2200) {
        a.fail(&format!("the 504 comes between 0.8 s and 2.2 s after the request was sent\n{report}"));
    }
    for l in &long {
        if l.status != 200 || l.took < Duration::from_millis(3900) || l.took > Duration::from_secs(7) {
            a.fail(&format!("the busy requests still complete with 200 after their 4 s\n{report}"));
        }
    }
    if after.status != 200 || after.took > Duration::from_secs(1) {
        a.fail(&format!("once threads are free a quick request gets 200 at once\n{report}"));
    }
    if coded.len() != 1 {
        a.fail(&format!("exactly one coded line for the queue timeout\n{report}"));
    }
    let line = &coded[0];
    if !line.contains("queue-timeout") || !names_group(line, "q") {
        a.fail(&format!("the line names the timeout (queue-timeout) and the group (q)\n{report}"));
    }
    timeout_lines_name_timeout_and_group(&a, &a.error_log(), "q");
    stop_cleanly(a);
}

#[test]
fn queue_timeout_gives_504_event() {
    queue_timeout_gives_504(Mpm::Event);
}

#[test]
fn queue_timeout_gives_504_worker() {
    queue_timeout_gives_504(Mpm::Worker);
}

#[test]
fn queue_timeout_gives_504_prefork() {
    queue_timeout_gives_504(Mpm::Prefork);
}

/// `processes=2 threads=4 queue-timeout=1` (8 threads): 12 concurrent 2-second requests; eight
/// get 200 at about 2 s, the other four get 504 at about 1 s (none is served after waiting for
/// a thread), each with a coded line naming queue-timeout and the group.
fn queue_timeout_under_a_burst(mpm: Mpm) {
    let a = server(mpm, "burst", "processes=2 threads=4 queue-timeout=1");
    serving_pids(&a, 2, &HashSet::new());
    let mark = log_mark(&a);
    let ts = burst(&a, &same("/probe?sleep=2", 12));
    thread::sleep(Duration::from_millis(500));
    let coded = new_lines_with(&a, mark, "WR0");
    let report = format!(
        "[{mpm}] 12 concurrent 2 s requests on processes=2 threads=4 queue-timeout=1:\n{}\
         coded log lines:\n{}\n",
        table(&ts),
        coded.join("\n")
    );
    println!("{report}");
    let ok: Vec<&Timed> = ts.iter().filter(|t| t.status == 200).collect();
    let timed_out: Vec<&Timed> = ts.iter().filter(|t| t.status == 504).collect();
    if ok.len() != 8 || timed_out.len() != 4 {
        a.fail(&format!("eight requests served (one per thread), four 504s\n{report}"));
    }
    if ok.iter().any(|t| t.took < Duration::from_millis(1900) || t.took > Duration::from_millis(3000)) {
        a.fail(&format!("the served requests run at once (done between 1.9 s and 3 s)\n{report}"));
    }
    if timed_out.iter().any(|t| t.took < Duration::from_millis(800) || t.took > Duration::from_millis(2200)) {
        a.fail(&format!("the 504s come between 0.8 s and 2.2 s after sending\n{report}"));
    }
    let pids: HashSet<&str> = ok.iter().map(|t| t.pid()).collect();
    assert_eq!(pids.len(), 2, "both processes served:\n{report}");
    if coded.len() != 4 || coded.iter().any(|l| !l.contains("queue-timeout") || !names_group(l, "burst")) {
        a.fail(&format!("one coded line per 504, naming queue-timeout and the group (burst)\n{report}"));
    }
    timeout_lines_name_timeout_and_group(&a, &a.error_log(), "burst");
    stop_cleanly(a);
}

#[test]
fn queue_timeout_under_a_burst_event() {
    queue_timeout_under_a_burst(Mpm::Event);
}

#[test]
fn queue_timeout_under_a_burst_worker() {
    queue_timeout_under_a_burst(Mpm::Worker);
}

#[test]
fn queue_timeout_under_a_burst_prefork() {
    queue_timeout_under_a_burst(Mpm::Prefork);
}

#[test]
fn names_group_matches_whole_words_only() {
    assert!(names_group("WR0126: queue-timeout of 1s expired for daemon process group 'q'", "q"));
    assert!(names_group("group q: queue-timeout", "q"));
    assert!(!names_group("WR0126: queue-timeout expired", "q"));
    assert!(names_group("group 'burst' (queue-timeout)", "burst"));
    assert!(!names_group("bursting", "burst"));
}

// ---------------------------------------------------------------------------------------------
// Without queue-timeout, a request waits for a free thread as long as socket-timeout allows
// ---------------------------------------------------------------------------------------------

/// connect-timeout bounds getting a connection, not the wait for a busy group's next free
/// thread: with every thread busy longer than connect-timeout, the next request still gets 200.
fn waits_past_connect_timeout(mpm: Mpm) {
    let a = server(mpm, "slow", "processes=1 threads=1 connect-timeout=1");
    let warm = timed_get(&a, "/probe", Instant::now());
    assert_eq!(warm.status, 200, "[{mpm}] warm-up: {warm}\n{}", a.error_log());
    let ts = burst(&a, &["/probe?sleep=3".to_string(), "/probe?sleep=0".to_string()]);
    let report = table(&ts);
    assert!(ts.iter().all(|t| t.status == 200), "[{mpm}] both must be served (no 503 after connect-timeout):\n{report}\n{}", a.error_log());
    assert!(!a.error_log().contains("WR0121"), "[{mpm}] {}", a.error_log());
    stop_cleanly(a);
}

#[test]
fn without_queue_timeout_a_request_waits_past_connect_timeout_event() {
    waits_past_connect_timeout(Mpm::Event);
}

#[test]
fn without_queue_timeout_a_request_waits_past_connect_timeout_prefork() {
    waits_past_connect_timeout(Mpm::Prefork);
}
