//! WSGIDaemonProcess options beyond the basics: the socket's owner and buffer sizes
//! (socket-user=, send-buffer-size=, receive-buffer-size=), who must own a script
//! (script-user=, script-group=), and the process's limits (cpu-priority=, stack-size=,
//! memory-limit=, virtual-memory-limit=, cpu-time-limit=).

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use common::*;

const APP: &str = r#"
import os
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    if environ['PATH_INFO'] == '/ids':
        return [('%d %d' % (os.getuid(), os.getgid())).encode()]
    return [('%d' % os.getpid()).encode()]
"#;

/// Stops the server; no crash may show in its error log.
fn stop_clean(a: Apache) {
    let stopped = a.stop();
    assert!(!stopped.has_crash(), "{}", stopped.error_log);
}

/// Waits (up to 15 s) until `path`, which answers with its process id, is served by a process
/// other than `old`.
fn wait_replaced(a: &Apache, path: &str, old: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = a.get(path);
        assert_eq!(r.status, 200, "{r}\n{}", a.error_log());
        if r.text() != old {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "process {old} was not replaced\n{}", a.error_log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The name of the user with `uid`, from the system's user database.
fn user_name(uid: u32) -> String {
    let out = Command::new("id").args(["-nu", &uid.to_string()]).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn socket_and_script_owner_options() {
    for mpm in Mpm::ALL {
        let b = ApacheBuilder::new().mpm(mpm).script("app.wsgi", APP);
        let script = b.dir().join("scripts/app.wsgi");
        let owner = user_name(std::fs::metadata(&script).unwrap().uid());
        // Apache's children run as www-data when the tests run as root, else as this user.
        let apache_user = if is_root() { "www-data".to_string() } else { owner.clone() };
        let (uid, gid) = {
            let out = |flag: &str| {
                let o = Command::new("id").args([flag, &apache_user]).output().expect("id");
                String::from_utf8_lossy(&o.stdout).trim().to_string()
            };
            (out("-u"), out("-g"))
        };
        let a = b
            .conf(&format!(
                "WSGIDaemonProcess ok threads=2 socket-user={apache_user} send-buffer-size=131072 receive-buffer-size=131072 script-user={owner}\n\
                 WSGIDaemonProcess strict threads=2 script-user=nobody\n\
                 WSGIDaemonProcess byid threads=1 user=#{uid} group=#{gid}\n\
                 WSGIScriptAlias /byid {{dir}}/scripts/app.wsgi process-group=byid\n\
                 WSGIScriptAlias /ok {{dir}}/scripts/app.wsgi process-group=ok\n\
                 WSGIScriptAlias /strict {{dir}}/scripts/app.wsgi process-group=strict\n\
                 <Directory {{dir}}/scripts>\n Require all granted\n</Directory>\n"
            ))
            .start();
        let r = a.get("/ok");
        assert_eq!(r.status, 200, "[{mpm}] {r}\n{}", a.error_log());
        let r = a.get("/strict");
        assert_eq!(r.status, 403, "[{mpm}] {r}");
        // user=#uid group=#gid, as Apache's User/Group allow.
        let r = a.get("/byid/ids");
        assert_eq!((r.status, r.text()), (200, format!("{uid} {gid}")), "[{mpm}] {}", a.error_log());
        assert!(a.wait_log("WR0136: ", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        assert!(a.error_log().contains("script-user= requires uid"), "[{mpm}] {}", a.error_log());
        // None of these options is reported as having no effect.
        for option in ["socket-user", "send-buffer-size", "receive-buffer-size", "script-user"] {
            assert!(!a.error_log().contains(&format!("option '{option}'")), "[{mpm}] {option}: {}", a.error_log());
        }
        stop_clean(a);
    }
}

/// memory-limit=: a daemon that leaks is replaced before it runs out (one WR0138 line naming
/// the limit), and no request fails; the kernel limits are set as mod_wsgi sets them.
#[test]
fn memory_limit_recycles_a_leaking_process() {
    const LEAK: &str = r#"
import os, resource
HELD = []
def application(environ, start_response):
    if environ['PATH_INFO'] == '/limits':
        body = '%d %d %d' % (resource.getrlimit(resource.RLIMIT_DATA)[0],
            resource.getrlimit(resource.RLIMIT_AS)[0], os.getpriority(os.PRIO_PROCESS, 0))
    else:
        HELD.append(bytearray(40 << 20))
        body = '%d' % os.getpid()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode()]
"#;
    let a = ApacheBuilder::new()
        .script("leak.wsgi", LEAK)
        .conf(
            "WSGIDaemonProcess leak threads=2 memory-limit=300000000 virtual-memory-limit=4000000000 cpu-priority=5 stack-size=524288\n\
             WSGIScriptAlias /leak {dir}/scripts/leak.wsgi process-group=leak\n\
             <Directory {dir}/scripts>\n Require all granted\n</Directory>\n",
        )
        .start();
    let r = a.get("/leak/limits");
    assert_eq!((r.status, r.text().as_str()), (200, "300000000 4000000000 5"), "{r}\n{}", a.error_log());
    let mut pids = std::collections::HashSet::new();
    for i in 0..20 {
        let r = a.get("/leak/x");
        assert_eq!(r.status, 200, "request {i}: {r}\n{}", a.error_log());
        pids.insert(r.text());
    }
    assert!(pids.len() >= 2, "the leaking process was never replaced: {pids:?}\n{}", a.error_log());
    let log = a.error_log();
    assert!(log.contains("WR0138: daemon process 'leak'") && log.contains("memory-limit=300000000 nearly reached"), "{log}");
    assert!(!log.contains("MemoryError"), "{log}");
    for option in ["memory-limit", "virtual-memory-limit", "cpu-priority", "stack-size"] {
        assert!(!log.contains(&format!("option '{option}'")), "{option}: {log}");
    }
    stop_clean(a);
}

/// cpu-time-limit=: a process that used up its CPU time finishes its request and is replaced.
#[test]
fn cpu_time_limit_replaces_the_process() {
    const SPIN: &str = r#"
import os, time
def application(environ, start_response):
    if environ['PATH_INFO'] == '/spin':
        end = time.process_time() + 1.5
        while time.process_time() < end:
            pass
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%d' % os.getpid()).encode()]
"#;
    let a = ApacheBuilder::new()
        .script("spin.wsgi", SPIN)
        .conf(
            "WSGIDaemonProcess spin threads=1 cpu-time-limit=1\n\
             WSGIScriptAlias /spin {dir}/scripts/spin.wsgi process-group=spin\n\
             <Directory {dir}/scripts>\n Require all granted\n</Directory>\n",
        )
        .start();
    let first = a.get("/spin/hello");
    assert_eq!(first.status, 200, "{first}\n{}", a.error_log());
    let r = a.get("/spin/spin");
    assert_eq!(r.status, 200, "the request that crossed the limit still completes: {r}\n{}", a.error_log());
    assert!(a.wait_log("cpu-time-limit of 1s of CPU time reached", Duration::from_secs(10)), "{}", a.error_log());
    wait_replaced(&a, "/spin/hello", &first.text());
    stop_clean(a);
}

/// header-buffer-size=: a larger response head is refused with 500 and one line saying which
/// option; SIGUSR2 evicts a process (replaced once its running request finishes, within
/// eviction-timeout=).
#[test]
fn header_buffer_size_and_eviction() {
    const APP: &str = r#"
import os, time
def application(environ, start_response):
    if environ['PATH_INFO'] == '/big':
        start_response('200 OK', [('X-Big', 'x' * 10000)])
        return [b'big']
    if environ['PATH_INFO'] == '/slow':
        time.sleep(1.5)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%d' % os.getpid()).encode()]
"#;
    let a = ApacheBuilder::new()
        .script("app.wsgi", APP)
        .conf(
            "WSGIDaemonProcess e threads=2 header-buffer-size=8192 eviction-timeout=10 graceful-timeout=1\n\
             WSGIScriptAlias /e {dir}/scripts/app.wsgi process-group=e\n\
             <Directory {dir}/scripts>\n Require all granted\n</Directory>\n",
        )
        .start();
    let r = a.get("/e/big");
    assert_eq!(r.status, 500, "{r}");
    assert!(a.wait_log("WR0139: ", Duration::from_secs(5)) && a.error_log().contains("more than header-buffer-size=8192"), "{}", a.error_log());
    let pid = a.get("/e/pid").text();
    // Evicted while a 1.5 s request runs: that request still completes (eviction-timeout=10
    // is longer than graceful-timeout=1), then a new process serves.
    let slow = std::thread::scope(|s| {
        let h = s.spawn(|| a.get("/e/slow"));
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-USR2", &pid]).status();
        h.join().unwrap()
    });
    assert_eq!((slow.status, slow.text()), (200, pid.clone()), "{}", a.error_log());
    assert!(a.wait_log("evicted (SIGUSR2)", Duration::from_secs(5)), "{}", a.error_log());
    wait_replaced(&a, "/e/pid", &pid);
    stop_clean(a);
}

/// supplementary-groups= adds groups to the daemon's user (when Apache starts as root, which
/// can change groups); startup-timeout= replaces a process whose scripts keep failing to load.
#[test]
fn supplementary_groups_and_startup_timeout() {
    const GROUPS: &str = r#"
import os
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [' '.join(str(g) for g in os.getgroups()).encode()]
"#;
    let adm_gid = {
        let out = Command::new("getent").args(["group", "adm"]).output().expect("getent");
        String::from_utf8_lossy(&out.stdout).split(':').nth(2).expect("Debian has group adm").to_string()
    };
    let a = ApacheBuilder::new()
        .script("groups.wsgi", GROUPS)
        .script("broken.wsgi", "raise RuntimeError('cannot start')\n")
        .conf(
            "WSGIDaemonProcess sg threads=1 supplementary-groups=adm\n\
             WSGIDaemonProcess st threads=1 startup-timeout=1\n\
             WSGIScriptAlias /groups {dir}/scripts/groups.wsgi process-group=sg\n\
             WSGIScriptAlias /broken {dir}/scripts/broken.wsgi process-group=st\n\
             <Directory {dir}/scripts>\n Require all granted\n</Directory>\n",
        )
        .start();
    let r = a.get("/groups");
    assert_eq!(r.status, 200, "{r}\n{}", a.error_log());
    let groups: Vec<String> = r.text().split(' ').map(String::from).collect();
    if is_root() {
        assert!(groups.contains(&adm_gid), "adm ({adm_gid}) not among {groups:?}");
    } else {
        // Without root the groups cannot change: the daemon keeps this user's.
        assert!(!groups.is_empty());
    }
    assert_eq!(a.get("/broken").status, 500);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.get("/broken").status, 500);
    assert!(a.wait_log("(startup-timeout)", Duration::from_secs(5)), "{}", a.error_log());
    assert!(a.wait_log_count("Starting process 'st'", 2, Duration::from_secs(10)), "{}", a.error_log());
    stop_clean(a);
}
