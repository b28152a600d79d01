//! Daemon mode against a real Apache: process groups, concurrency, reloading, crashes, recycling,
//! timeouts, the socket, graceful restarts and start-up.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Apache, ApacheBuilder, Mpm, http_request, seed_vhost};

const HELLO: &str = include_str!("../examples/hello.wsgi");

const PID_APP: &str = r#"
import os, time, threading
def application(environ, start_response):
    q = environ.get('QUERY_STRING', '')
    if q.startswith('sleep='):
        time.sleep(float(q[6:]))
    body = ('%d %d %s %s %s' % (os.getpid(), os.getppid(), environ['mod_wsgi.process_group'],
            environ['wsgi.multithread'], environ['wsgi.multiprocess'])).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
"#;

fn scripts_dir() -> &'static str {
    "<Directory {dir}/scripts>\n  Require all granted\n</Directory>"
}

fn pids_of(a: &Apache, path: &str, n: usize) -> HashSet<String> {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n).map(|_| s.spawn(|| a.get(path))).collect();
        hs.into_iter()
            .map(|h| {
                let r = h.join().unwrap();
                assert_eq!(r.status, 200, "{r}\n{}", a.error_log());
                r.text().split(' ').next().unwrap().to_string()
            })
            .collect()
    })
}

fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

/// examples/seed-daemon.conf with one more mount in the same group, `/pid` (the process that
/// serves), before its `WSGIScriptAlias /`.
fn seed_daemon_with_pid_mount() -> String {
    let conf = seed_vhost("daemon");
    let root_mount = "    WSGIScriptAlias / {dir}/wsgi-scripts/myapp.wsgi\n";
    assert!(conf.contains(root_mount), "examples/seed-daemon.conf: no {root_mount:?}:\n{conf}");
    conf.replace(root_mount, &format!("    WSGIScriptAlias /pid {{dir}}/wsgi-scripts/pid.wsgi\n{root_mount}"))
}

#[test]
fn seed_daemon_configuration_verbatim_under_every_mpm() {
    for mpm in Mpm::ALL {
        let a = ApacheBuilder::new()
            .mpm(mpm)
            .root_access("    AllowOverride None\n    Order deny,allow\n    Deny from all")
            .file("documents/robots.txt", "User-agent: *\n")
            .file("documents/favicon.ico", "ICO")
            .file("documents/media/a.css", "css")
            .file("wsgi-scripts/myapp.wsgi", HELLO)
            .file("wsgi-scripts/pid.wsgi", PID_APP)
            .vhost(&seed_daemon_with_pid_mount())
            .start();
        let h = [("Host", "www.example.com")];
        let r = a.get_with("/", &h);
        assert_eq!((r.status, r.body.as_slice()), (200, b"Hello World!".as_slice()), "{mpm:?}: {r}\n{}", a.error_log());
        assert_eq!(r.header("Content-Length"), Some("12"));
        assert_eq!(a.get_with("/robots.txt", &h).text(), "User-agent: *\n", "static files stay with Apache");
        assert_eq!(a.get_with("/media/a.css", &h).text(), "css");
        // Both processes serve: concurrent slow requests spread over them.
        let mut pids = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while pids.len() < 2 && Instant::now() < deadline {
            pids.extend(std::thread::scope(|s| {
                let hs: Vec<_> = (0..12).map(|_| s.spawn(|| a.get_with("/pid?sleep=0.3", &h))).collect();
                hs.into_iter().map(|h| h.join().unwrap().text().split(' ').next().unwrap_or("").to_string()).collect::<Vec<_>>()
            }));
        }
        assert_eq!(pids.len(), 2, "{mpm:?}: both daemon processes serve: {pids:?}");
        let body = a.get_with("/pid", &h).text();
        assert!(body.ends_with("example.com True True"), "{body}");
        // display-name=%{GROUP} is shown in full.
        for pid in &pids {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            let cmd = String::from_utf8_lossy(&cmd).trim_end_matches('\0').to_string();
            assert_eq!(cmd, "(wsgi:example.com)", "{mpm:?}");
        }
        let log = a.error_log();
        assert!(log.contains("Starting process 'example.com'") && log.contains("threads=15"), "{log}");
        let stopped = a.stop();
        assert!(!stopped.has_crash(), "{mpm:?}: {}", stopped.error_log);
        std::thread::sleep(Duration::from_millis(300));
        for pid in &pids {
            assert!(!alive(pid), "{mpm:?}: daemon process {pid} outlived Apache");
        }
    }
}

fn daemon_server(mpm: Mpm, options: &str) -> ApacheBuilder {
    ApacheBuilder::new()
        .mpm(mpm)
        .log_level("warn wsgi:info")
        .script("pid.wsgi", PID_APP)
        .script("hello.wsgi", HELLO)
        .conf(scripts_dir())
        .conf(&format!("WSGIDaemonProcess g {options}"))
        .conf("WSGIScriptAlias /pid {dir}/scripts/pid.wsgi process-group=g")
        .conf("WSGIScriptAlias /hello {dir}/scripts/hello.wsgi process-group=g")
}

#[test]
fn requests_run_concurrently_on_the_threads() {
    let a = daemon_server(Mpm::Event, "processes=1 threads=10").start();
    assert_eq!(a.get("/hello").status, 200);
    let t = Instant::now();
    let pids = pids_of(&a, "/pid?sleep=1", 8);
    let took = t.elapsed();
    assert_eq!(pids.len(), 1);
    assert!(took < Duration::from_millis(2500), "8 one-second requests on 10 threads took {took:?}");
}

/// Load from `n` client threads until `stop`; returns (ok, failures).
fn load(a: &Apache, path: &str, n: usize, stop: &AtomicBool) -> (usize, Vec<String>) {
    let ok = AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match a.try_request(&http_request("GET", path, &[("Connection", "close")], b"")) {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failed.lock().unwrap().push(format!("{} {}", r.status, r.text())),
                        Err(e) => failed.lock().unwrap().push(e),
                    }
                }
            });
        }
    });
    (ok.into_inner(), failed.into_inner().unwrap())
}

#[test]
fn touching_the_script_reloads_without_failing_requests() {
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let a = daemon_server(mpm, "processes=2 threads=5").start();
        let script = a.dir.join("scripts/hello.wsgi");
        assert_eq!(a.get("/hello").text(), "Hello World!");
        let stop = AtomicBool::new(false);
        let (ok, failed) = std::thread::scope(|s| {
            let h = s.spawn(|| load(&a, "/hello", 4, &stop));
            for i in 0..4 {
                std::thread::sleep(Duration::from_millis(600));
                let src = HELLO.replace("Hello World!", &format!("Hello {i}!"));
                std::fs::write(&script, src).unwrap();
            }
            std::thread::sleep(Duration::from_millis(600));
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap()
        });
        assert!(failed.is_empty(), "{mpm:?}: {} failures during reloads, e.g. {:?}\n{}", failed.len(), &failed[..failed.len().min(5)], a.error_log());
        assert!(ok > 50, "{mpm:?}: only {ok} requests");
        assert_eq!(a.get("/hello").text(), "Hello 3!", "{mpm:?}: the new code is served");
        let log = a.error_log();
        assert!(log.contains("restarting: script file"), "{log}");
    }
}

#[test]
fn kill_9_fails_at_most_running_requests_and_the_group_recovers() {
    let a = daemon_server(Mpm::Worker, "processes=1 threads=5").start();
    let first: String = a.get("/pid").text().split(' ').next().unwrap().to_string();
    let stop = AtomicBool::new(false);
    let (ok, failed) = std::thread::scope(|s| {
        let h = s.spawn(|| load(&a, "/pid", 3, &stop));
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY-free: kill(1) via the shell.
        std::process::Command::new("kill").args(["-9", &first]).status().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    assert!(failed.len() <= 3, "at most the in-flight requests fail: {failed:?}");
    for f in &failed {
        assert!(f.starts_with("502") || f.starts_with("503"), "{f}");
    }
    assert!(ok > 10);
    let t = Instant::now();
    let second = a.get("/pid").text().split(' ').next().unwrap().to_string();
    assert_ne!(first, second);
    assert!(t.elapsed() < Duration::from_secs(1));
    let log = a.error_log();
    assert!(log.contains("WR0122") && log.contains("killed by signal 9"), "{log}");
    // It had been serving, so this is no failed start: replaced at once, without a back-off.
    let line = log.lines().find(|l| l.contains("WR0122")).unwrap_or_default();
    assert!(line.contains("starting a new one.") && !line.contains(" in 1s"), "{line}");
}

#[test]
fn maximum_requests_recycles_without_failing_requests() {
    let a = daemon_server(Mpm::Event, "processes=1 threads=2 maximum-requests=5").start();
    let mut pids = HashSet::new();
    for _ in 0..23 {
        let r = a.get("/pid");
        assert_eq!(r.status, 200, "{r}\n{}", a.error_log());
        pids.insert(r.text().split(' ').next().unwrap().to_string());
    }
    assert!(pids.len() >= 4, "recycled every 5 requests: {pids:?}");
    assert!(a.error_log().contains("maximum requests reached (5)"), "{}", a.error_log());
}

#[test]
fn request_timeout_restarts_the_process_and_logs_the_stack() {
    let a = daemon_server(Mpm::Event, "processes=1 threads=2 request-timeout=2 shutdown-timeout=1").start();
    let before = a.get("/pid").text().split(' ').next().unwrap().to_string();
    let t = Instant::now();
    let r = a.get("/pid?sleep=30");
    assert!(t.elapsed() < Duration::from_secs(10), "the hung request was ended");
    assert!(r.status == 502 || !r.complete, "{r}");
    assert!(a.wait_log("WR0119", Duration::from_secs(5)));
    let log = a.error_log();
    assert!(log.contains("time.sleep(float(q[6:]))"), "the stuck thread's Python stack is logged: {log}");
    assert!(log.contains("request timeout of 2s"), "{log}");
    let after = a.get("/pid").text().split(' ').next().unwrap().to_string();
    assert_ne!(before, after);
}

/// For interrupt-timeout: `?spin` loops in Python for ever, `?ignore` swallows
/// mod_wsgi.RequestTimeout and loops on, `?sleep=N` sleeps in C, `?big=N` returns N MiB in one
/// block (written outside Python code); otherwise the pid.
const STUCK_APP: &str = r#"
import os, time, mod_wsgi
def application(environ, start_response):
    q = environ.get('QUERY_STRING', '')
    if q == 'spin':
        while True:
            pass
    if q == 'ignore':
        while True:
            try:
                while True:
                    pass
            except mod_wsgi.RequestTimeout:
                pass
    if q.startswith('sleep='):
        time.sleep(float(q[6:]))
    if q.startswith('big='):
        body = b'x' * (int(q[4:]) << 20)
    else:
        body = str(os.getpid()).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
"#;

/// A group `g` with `options` and STUCK_APP mounted at /stuck (its own sub-interpreter) and at
/// /global (the main interpreter).
fn interrupt_server(options: &str) -> Apache {
    ApacheBuilder::new()
        .log_level("warn wsgi:info")
        .script("stuck.wsgi", STUCK_APP)
        .conf(scripts_dir())
        .conf(&format!("WSGIDaemonProcess g {options}"))
        .conf("WSGIScriptAlias /stuck {dir}/scripts/stuck.wsgi process-group=g")
        .conf("WSGIScriptAlias /global {dir}/scripts/stuck.wsgi process-group=g application-group=%{GLOBAL}")
        .start()
}

#[test]
fn interrupt_timeout_ends_a_stuck_request_with_504_and_keeps_the_process() {
    // request-timeout=1 with 2 threads: a request is stuck after 1 * (1 + ln 2) = 1.7 s.
    let a = interrupt_server("processes=1 threads=2 request-timeout=1 interrupt-timeout=4 shutdown-timeout=1");
    let pid = a.get("/stuck").text();
    assert!(pid.parse::<u32>().is_ok(), "{pid}\n{}", a.error_log());
    for (i, path) in ["/stuck?spin", "/global?spin"].into_iter().enumerate() {
        let t = Instant::now();
        let r = a.get(path);
        let took = t.elapsed();
        assert_eq!(r.status, 504, "{path}: {r}\n{}", a.error_log());
        assert!(took >= Duration::from_millis(1600) && took < Duration::from_secs(4), "{path}: interrupted at the request timeout, not at {took:?}");
        assert!(a.wait_log_count("Request interrupted by RequestTimeout; thread recovered", i + 1, Duration::from_secs(3)), "{}", a.error_log());
        // Both threads still serve, in the same process.
        assert_eq!(pids_of(&a, "/stuck?sleep=0.3", 2), HashSet::from([pid.clone()]), "{}", a.error_log());
    }
    let log = a.error_log();
    assert_eq!(log.matches("Injected RequestTimeout into thread").count(), 2, "{log}");
    let line = log.lines().find(|l| l.contains("Injected RequestTimeout")).unwrap();
    assert!(line.contains("WR0137") && line.contains("'g'") && line.contains("request-timeout") && line.contains("interrupt-timeout (4s)"), "{line}");
    let stack = |l: &str| l.contains("WR0137") && (l.trim_end().ends_with("pass") || l.trim_end().ends_with("while True:"));
    assert!(log.lines().any(stack), "the stuck thread's stack is logged: {log}");
    // A thread blocked in C raises it once the call returns (here, before interrupt-timeout).
    let t = Instant::now();
    assert_eq!(a.get("/stuck?sleep=3").status, 504, "{}", a.error_log());
    assert!(t.elapsed() >= Duration::from_secs(3));
    assert!(a.wait_log_count("Injected RequestTimeout into thread", 3, Duration::from_secs(1)));
    // Well past interrupt-timeout: the process was never restarted.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.get("/stuck").text(), pid);
    let log = a.error_log();
    assert!(!log.contains("restarting") && !log.contains("WR0119"), "{log}");
}

#[test]
fn interrupt_timeout_takes_back_an_interruption_its_request_never_raised() {
    let a = interrupt_server("processes=1 threads=2 request-timeout=1 interrupt-timeout=10 shutdown-timeout=1");
    let pid = a.get("/stuck").text();
    // 32 MiB that the client does not read for 3 s: the request is stuck writing, outside
    // Python code, when it is interrupted, and then finishes without running Python again.
    let mut c = a.connect();
    c.write(&http_request("GET", "/stuck?big=32", &[], b""));
    assert!(a.wait_log("Injected RequestTimeout into thread", Duration::from_secs(5)), "{}", a.error_log());
    std::thread::sleep(Duration::from_secs(1));
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.complete, r.body.len()), (200, true, 32 << 20), "{}", a.error_log());
    drop(c);
    // The exception it never raised does not hit the thread's next requests.
    for _ in 0..4 {
        assert_eq!(pids_of(&a, "/stuck", 2), HashSet::from([pid.clone()]), "{}", a.error_log());
    }
    let log = a.error_log();
    assert!(!log.contains("Request interrupted by RequestTimeout") && !log.contains("restarting"), "{log}");
}

#[test]
fn interrupt_timeout_restarts_the_process_when_the_request_ignores_the_exception() {
    let a = interrupt_server("processes=1 threads=2 request-timeout=1 interrupt-timeout=2 shutdown-timeout=1");
    let before = a.get("/stuck").text();
    let t = Instant::now();
    let r = a.get("/stuck?ignore");
    let took = t.elapsed();
    assert!(r.status == 502 || !r.complete, "{r}");
    // Stuck at 1.7 s, interrupted, not back 2 s later: restarted (then 1 s of shutdown-timeout).
    assert!(took >= Duration::from_millis(3600) && took < Duration::from_secs(10), "{took:?}");
    assert!(a.wait_log("WR0119", Duration::from_secs(5)));
    let log = a.error_log();
    assert!(log.contains("Injected RequestTimeout into thread"), "{log}");
    assert!(log.contains("had not returned 2s later (interrupt-timeout)"), "{log}");
    // The stacks are read from the stuck request's sub-interpreter while it loops.
    assert!(!log.contains("could not get the Python stacks") && log.lines().any(|l| l.contains("WR0119") && l.contains("stuck.wsgi")), "{log}");
    assert!(!log.contains("Request interrupted by RequestTimeout"), "{log}");
    let after = a.get("/stuck").text();
    assert!(after.parse::<u32>().is_ok() && after != before, "{before} -> {after}\n{log}");
}

#[test]
fn undefined_process_group_is_a_500_with_one_clear_line() {
    let a = ApacheBuilder::new()
        .script("hello.wsgi", HELLO)
        .conf(scripts_dir())
        .conf("WSGIScriptAlias /x {dir}/scripts/hello.wsgi process-group=nosuch")
        .start();
    assert_eq!(a.get("/x").status, 500);
    let log = a.error_log();
    assert_eq!(log.matches("WR0114").count(), 1, "{log}");
    assert!(log.contains("'nosuch'"), "{log}");
}

#[test]
fn socket_is_private_and_unknown_peers_are_refused() {
    let a = daemon_server(Mpm::Event, "processes=1 threads=2").start();
    assert_eq!(a.get("/hello").status, 200);
    // The socket lives in a directory of its own, closed to others.
    let log = a.error_log();
    let at = log.find("Daemon process group 'g' listens on '").expect("socket path logged") + "Daemon process group 'g' listens on '".len();
    let sock = std::path::PathBuf::from(&log[at..at + log[at..].find('\'').unwrap()]);
    let dir = sock.parent().unwrap().to_path_buf();
    let dmeta = std::fs::metadata(&dir).unwrap();
    assert_eq!(dmeta.permissions().mode() & 0o777, 0o700);
    let smeta = std::fs::metadata(&sock).unwrap();
    assert_eq!(smeta.permissions().mode() & 0o777, 0o600);
    if common::is_root() {
        let www = std::process::Command::new("id").args(["-u", "www-data"]).output().unwrap();
        let uid: u32 = String::from_utf8_lossy(&www.stdout).trim().parse().unwrap();
        assert_eq!((dmeta.uid(), smeta.uid()), (uid, uid));
        // Another user cannot even reach the socket (modes above). Open the modes for a moment
        // to check the second line of defence: SO_PEERCRED refuses a peer that is not Apache.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
        let py = format!(
            "import socket, os\nos.setgid(65534); os.setuid(65534)\ns = socket.socket(socket.AF_UNIX)\ns.connect({:?})\nprint(s.recv(100))",
            sock.to_string_lossy()
        );
        let out = std::process::Command::new("/usr/bin/python3").args(["-c", &py]).output().unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("peer not allowed"), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    // Root without the secret: refused.
    let out = std::process::Command::new("/usr/bin/python3")
        // A hello of the current protocol version (3) with an empty secret.
        .args(["-c", &format!("import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({:?})\ns.sendall(b'\\x01\\x00\\x00\\x00\\x0aMWRS\\x00\\x03\\x00\\x00\\x00\\x00')\nprint(s.recv(100))", sock.to_string_lossy())])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("handshake failed"), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(a.wait_log("without the group's secret", Duration::from_secs(5)), "{}", a.error_log());
    if common::is_root() {
        assert!(a.error_log().contains("uid 65534"), "{}", a.error_log());
    }
    // The server keeps serving.
    assert_eq!(a.get("/hello").text(), "Hello World!");
}

#[test]
fn graceful_restart_replaces_daemon_processes() {
    for mpm in Mpm::ALL {
        let a = daemon_server(mpm, "processes=1 threads=3").start();
        let before = a.get("/pid").text();
        let (pid, ppid) = {
            let mut it = before.split(' ');
            (it.next().unwrap().to_string(), it.next().unwrap().to_string())
        };
        a.graceful();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut after = a.get("/pid");
        while after.text().starts_with(&format!("{pid} ")) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            after = a.get("/pid");
        }
        assert_eq!(after.status, 200, "{mpm:?}: {after}");
        assert!(!after.text().starts_with(&format!("{pid} ")), "{mpm:?}: new daemon after graceful restart");
        std::thread::sleep(Duration::from_millis(500));
        assert!(!alive(&pid) && !alive(&ppid), "{mpm:?}: old daemon processes are gone (no orphans, no zombies)");
        let stopped = a.stop();
        assert!(!stopped.has_crash(), "{mpm:?}: {}", stopped.error_log);
    }
}

#[test]
fn atexit_functions_run_when_a_daemon_process_is_replaced() {
    let b = ApacheBuilder::new().log_level("warn wsgi:info");
    let marker = b.dir().join("tmp/atexit.log");
    let a = b
        .script(
            "app.wsgi",
            &format!(
                "import atexit, os\natexit.register(lambda: open({:?}, 'a').write('exit %d\\n' % os.getpid()))\n{HELLO}",
                marker.to_string_lossy()
            ),
        )
        .conf(scripts_dir())
        .conf("WSGIDaemonProcess g processes=1 threads=2")
        .conf("WSGIScriptAlias /app {dir}/scripts/app.wsgi process-group=g")
        .start();
    assert_eq!(a.get("/app").body, b"Hello World!");
    let script = a.dir.join("scripts/app.wsgi");
    let src = std::fs::read_to_string(&script).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&script, src).unwrap();
    assert_eq!(a.get("/app").body, b"Hello World!", "served by the new process after the touch");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&marker).unwrap_or_default().starts_with("exit ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::fs::read_to_string(&marker).unwrap_or_default().starts_with("exit "), "{}", a.error_log());
}

#[test]
fn import_script_preloads_at_process_start() {
    let a = ApacheBuilder::new()
        .log_level("warn wsgi:info")
        .script("pid.wsgi", PID_APP)
        .script("hello.wsgi", HELLO)
        .conf(scripts_dir())
        .conf("WSGIDaemonProcess g processes=1 threads=2")
        .conf("WSGIImportScript {dir}/scripts/pid.wsgi process-group=g application-group=%{GLOBAL}")
        .conf("WSGIImportScript {dir}/scripts/hello.wsgi process-group=%{GLOBAL} application-group=%{GLOBAL}")
        // A preloaded script serves only the mounts in the same process and application group.
        .conf("WSGIScriptAlias /pid {dir}/scripts/pid.wsgi process-group=g application-group=%{GLOBAL}")
        .conf("WSGIScriptAlias /hello {dir}/scripts/hello.wsgi application-group=%{GLOBAL}")
        .start();
    // Loaded before any request: in the daemon process and in the Apache children.
    assert!(a.wait_log("Loading WSGI script", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(300));
    let log = a.error_log();
    assert!(log.contains("scripts/pid.wsgi"), "{log}");
    assert!(log.contains("scripts/hello.wsgi"), "{log}");
    let first = a.get("/pid").text();
    for _ in 0..5 {
        assert_eq!(a.get("/pid").text(), first, "the preloaded script is the one serving: no reload, no restart");
        assert_eq!(a.get("/hello").text(), "Hello World!");
    }
    let log = a.error_log();
    assert!(!log.contains("restarting"), "{log}");
    assert_eq!(log.matches("pid.wsgi' into application group '' (pid").count(), 1, "loaded once: {log}");
    assert!(!log.contains("Create interpreter"), "everything ran in the main interpreter: {log}");
}

#[test]
fn a_group_that_cannot_start_backs_off_and_answers_503() {
    let a = ApacheBuilder::new()
        .log_level("warn wsgi:info")
        .script("hello.wsgi", HELLO)
        .conf(scripts_dir())
        .conf("WSGIDaemonProcess broken processes=1 threads=2 python-home=/nonexistent/venv connect-timeout=2")
        .conf("WSGIScriptAlias /x {dir}/scripts/hello.wsgi process-group=broken")
        .start();
    let t = Instant::now();
    let r = a.get("/x");
    assert_eq!(r.status, 503, "{r}");
    assert!(t.elapsed() < Duration::from_secs(10), "the request waited {:?}", t.elapsed());
    std::thread::sleep(Duration::from_secs(4));
    let log = a.error_log();
    assert!(log.contains("WR0112") && log.contains("cannot initialise Python"), "the reason is logged: {log}");
    assert!(log.contains("python-home"), "the log says what to check: {log}");
    assert!(log.contains("failed 2 time(s) in a row"), "restarts back off: {log}");
    let starts = log.matches("Starting process 'broken'").count();
    assert!((2..=6).contains(&starts), "no tight loop: {starts} starts in ~6 s\n{log}");
    assert!(log.contains("WR0121"), "the 503 is explained: {log}");
}

#[test]
fn process_group_from_an_environment_variable() {
    let a = ApacheBuilder::new()
        .script("pid.wsgi", PID_APP)
        .conf(scripts_dir())
        .conf("WSGIDaemonProcess first processes=1 threads=2")
        .conf("WSGIDaemonProcess second processes=1 threads=2")
        .conf("WSGIScriptAlias /a {dir}/scripts/pid.wsgi")
        .conf("WSGIScriptAlias /b {dir}/scripts/pid.wsgi")
        .conf("<Location /a>\n  SetEnv WSGI_GROUP first\n</Location>\n<Location /b>\n  SetEnv WSGI_GROUP second\n</Location>")
        .conf("WSGIProcessGroup %{ENV:WSGI_GROUP}")
        .start();
    let ra = a.get("/a").text();
    let rb = a.get("/b").text();
    assert!(ra.contains(" first "), "{ra}\n{}", a.error_log());
    assert!(rb.contains(" second "), "{rb}");
    assert_ne!(ra.split(' ').next(), rb.split(' ').next(), "two groups, two processes");
}
