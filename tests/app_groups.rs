//! Application groups: every WSGIScriptAlias mount runs in a Python sub-interpreter of its own
//! by default, named as mod_wsgi names it (`%{RESOURCE}` = `host[:port]|SCRIPT_NAME`), unless
//! `WSGIApplicationGroup` / `application-group=` put it elsewhere (`%{GLOBAL}` = the main
//! interpreter, `%{SERVER}`, `%{ENV:VAR}`, a literal name).
//!
//! Most tests force a single Apache child (and, where it matters, a single worker thread), so
//! that state seen by consecutive requests is the state of one process: two mounts are then two
//! interpreters of the same process, or one when they share a group.
//!
//! The headline test serves two Django projects with different settings from one VirtualHost,
//! in one process (embedded and daemon mode). Django comes from the package index into a
//! virtualenv made with `/usr/bin/python3 -m venv` under `target/itest-venv-django/`, reused
//! while it still imports django; if pip fails the test fails with pip's output.
//!
//! Checked against Debian's mod_wsgi 4.9.4 (`MOD_WSGI_SO=/usr/lib/apache2/modules/mod_wsgi.so`):
//! everything passes there except where that version has known bugs with Python 3.11: under
//! the threaded MPMs a `%{GLOBAL}` request on a thread that earlier served a sub-interpreter can
//! run in that sub-interpreter, and a child may abort at shutdown ("remaining subinterpreters",
//! GrahamDumpleton/mod_wsgi#730).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::apps::rewrite_script;
use common::*;

// ---------------------------------------------------------------------------------------------
// Applications
// ---------------------------------------------------------------------------------------------

/// Reports, as `key=value` lines, which interpreter serves it and the state it keeps there.
/// `import mod_wsgi` failing does not fail the request (the `module` field says why), so the
/// other fields can still be checked.
const PROBE: &str = r#"
import os, sys, threading, builtins
import _xxsubinterpreters as _subinterp

TOKEN = os.urandom(8).hex()              # changes whenever this file is executed again
_loads = builtins.__dict__.setdefault('_probe_loads', {})   # builtins: one per interpreter
_loads[__file__] = _loads.get(__file__, 0) + 1
COUNT = 0
_lock = threading.Lock()
_local = threading.local()

def _mod_wsgi_fields():
    try:
        import mod_wsgi
    except BaseException as e:
        return {'module': 'import failed: %s: %s' % (type(e).__name__, e)}
    out = {'module': 'ok'}
    for k in ('application_group', 'process_group', 'version', 'maximum_processes',
              'threads_per_process'):
        out['module.' + k] = repr(getattr(mod_wsgi, k, '<missing>'))
    v = getattr(mod_wsgi, 'version', None)
    out['module.version_ok'] = repr(isinstance(v, tuple) and len(v) >= 2
                                    and all(type(x) is int for x in v))
    out['module.ints_ok'] = repr(all(type(getattr(mod_wsgi, k, None)) is int
                                     for k in ('maximum_processes', 'threads_per_process')))
    return out

def application(environ, start_response):
    global COUNT
    with _lock:
        COUNT += 1
        count = COUNT
    _local.n = getattr(_local, 'n', 0) + 1
    pre = sys.modules.get('preloaded_mod')
    f = {
        'group': repr(environ.get('mod_wsgi.application_group')),
        'process_group': repr(environ.get('mod_wsgi.process_group')),
        'environ_version': repr(environ.get('mod_wsgi.version')),
        'main': repr(_subinterp.get_current() == _subinterp.get_main()),
        'interp': str(int(_subinterp.get_current())),
        'pid': str(os.getpid()),
        'thread': str(threading.get_ident()),
        'count': str(count),
        'token': TOKEN,
        'local': str(_local.n),
        'loads_here': str(_loads.get(__file__)),
        'loaded_files': ','.join(sorted(os.path.basename(p) for p in _loads)),
        'preloaded': repr(getattr(builtins, 'PRELOADED', None)),
        'preload_interp': repr(getattr(pre, 'interp', None)),
    }
    f.update(_mod_wsgi_fields())
    body = ''.join('%s=%s\n' % kv for kv in sorted(f.items())).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
"#;

/// WSGIImportScript target: marks the interpreter it runs in.
const PRELOAD: &str = r#"
import builtins, os, sys, types
import _xxsubinterpreters as _subinterp
builtins.PRELOADED = 'preload-ok'
_m = types.ModuleType('preloaded_mod')
_m.interp = int(_subinterp.get_current())
_m.pid = os.getpid()
sys.modules['preloaded_mod'] = _m
print('PRELOAD-RAN pid=%d interp=%d' % (os.getpid(), _m.interp), file=sys.stderr)
"#;

/// print(), sys.stderr, wsgi.errors, wsgi.input and wsgi.file_wrapper.
const IO_APP: &str = r#"
import os, sys
import _xxsubinterpreters as _subinterp

def application(environ, start_response):
    p = environ.get('PATH_INFO', '')
    q = environ.get('QUERY_STRING', '')
    grp = environ.get('mod_wsgi.application_group')
    main = str(_subinterp.get_current() == _subinterp.get_main())
    headers = [('Content-Type', 'application/octet-stream'), ('X-Main', main)]
    if p == '/print':
        print('PRINT-MARK %s %s' % (q, grp))
        sys.stdout.flush()
        print('STDERR-MARK %s %s' % (q, grp), file=sys.stderr)
        sys.stderr.flush()
        body = b'printed'
    elif p == '/errors':
        err = environ['wsgi.errors']
        err.write('ERRORS-MARK %s %s\n' % (q, grp))
        err.flush()
        body = b'written'
    elif p == '/echo':
        n = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(n)
    elif p == '/file':
        path = os.path.join(os.path.dirname(__file__), 'blob.bin')
        start_response('200 OK', headers + [('Content-Length', str(os.path.getsize(path)))])
        return environ['wsgi.file_wrapper'](open(path, 'rb'), 8192)
    else:
        start_response('404 Not Found', headers)
        return [b'unknown']
    start_response('200 OK', headers + [('Content-Length', str(len(body)))])
    return [body]
"#;

const SCRIPTS_DIR: &str = "<Directory {dir}/scripts>\n    Require all granted\n</Directory>";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An embedded-mode server with one child (4 threads under the threaded MPMs) and `probe.wsgi`.
fn embedded_one_child(mpm: Mpm) -> ApacheBuilder {
    ApacheBuilder::new()
        .mpm(mpm)
        .mpm_config(&one_child(mpm, 4))
        .script("probe.wsgi", PROBE)
        .conf(SCRIPTS_DIR)
}

/// The probe's answer: its `key=value` lines.
struct Probe {
    path: String,
    fields: BTreeMap<String, String>,
    text: String,
}

impl Probe {
    fn f(&self, key: &str) -> &str {
        match self.fields.get(key) {
            Some(v) => v.as_str(),
            None => panic!("probe {}: no field {key:?} in:\n{}", self.path, self.text),
        }
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GET {} ->\n{}", self.path, self.text)
    }
}

/// GET with `Host: host`; a 503 (daemon group still starting) is retried for up to 20 s.
fn get_host(a: &Apache, path: &str, host: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = a.get_with(path, &[("Host", host)]);
        if r.status != 503 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn probe_host(a: &Apache, path: &str, host: &str) -> Probe {
    let r = get_host(a, path, host);
    if r.status != 200 {
        a.fail(&format!("GET {path} (Host: {host}): the probe application must answer 200:\n{r}"));
    }
    let text = r.text();
    let fields = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Probe { path: path.to_string(), fields, text }
}

fn probe(a: &Apache, path: &str) -> Probe {
    probe_host(a, path, "localhost")
}

fn q(s: &str) -> String {
    format!("'{s}'")
}

fn assert_no_crash(a: Apache, what: &str) {
    let st = a.stop();
    assert!(!st.has_crash(), "{what}: a process crashed:\n{}", st.error_log);
}

/// One `#[test]` per MPM: `name::event`, `name::worker`, `name::prefork`.
macro_rules! per_mpm {
    ($($name:ident => $body:path;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn event() {
                $body(Mpm::Event)
            }
            #[test]
            fn worker() {
                $body(Mpm::Worker)
            }
            #[test]
            fn prefork() {
                $body(Mpm::Prefork)
            }
        }
    )*};
}

per_mpm! {
    group_names_and_the_main_interpreter => group_names_body;
    create_interpreter_is_logged_once_per_group => create_interpreter_log_body;
    same_script_at_two_mounts_is_two_interpreters_unless_they_share_a_group => two_mounts_body;
    threading_local_survives_between_requests_in_a_sub_interpreter => threading_local_body;
    touching_one_script_reloads_that_app_only => reload_body;
    import_script_preloads_into_its_application_group => preload_embedded_body;
    mod_wsgi_module_in_every_interpreter => mod_wsgi_module_embedded_body;
    output_and_request_io_in_a_sub_interpreter => io_embedded_body;
    two_django_projects_in_one_virtualhost_embedded => django_embedded_body;
    two_django_projects_in_one_virtualhost_daemon => django_daemon_body;
}

// ---------------------------------------------------------------------------------------------
// Group names; %{GLOBAL} is the main interpreter
// ---------------------------------------------------------------------------------------------

fn group_names_body(mpm: Mpm) {
    let a = embedded_one_child(mpm)
        .script("d/probe.wsgi", PROBE)
        .conf(
            "WSGIScriptAlias /res {dir}/scripts/probe.wsgi\n\
             WSGIScriptAlias /global {dir}/scripts/probe.wsgi application-group=%{GLOBAL}\n\
             WSGIScriptAlias /server {dir}/scripts/probe.wsgi application-group=%{SERVER}\n\
             WSGIScriptAlias /named {dir}/scripts/probe.wsgi application-group=shared\n\
             WSGIScriptAlias /env {dir}/scripts/probe.wsgi\n\
             WSGIScriptAlias /loc {dir}/scripts/probe.wsgi\n\
             WSGIScriptAlias /dir {dir}/scripts/d/probe.wsgi\n\
             <Location /env>\n    SetEnv APP_GROUP_NAME fromenv\n    WSGIApplicationGroup %{ENV:APP_GROUP_NAME}\n</Location>\n\
             <Location /loc>\n    WSGIApplicationGroup locgroup\n</Location>\n\
             <Directory {dir}/scripts/d>\n    WSGIApplicationGroup dirgroup\n</Directory>",
        )
        .start();
    let port = a.port;

    // (path, Host header, expected group name, main interpreter?)
    let res_port = format!("localhost:{port}|/res");
    let cases: Vec<(&str, String, String, bool)> = vec![
        ("/res", "localhost".into(), "localhost|/res".into(), false),
        ("/res/sub/path", "localhost".into(), "localhost|/res".into(), false),
        ("/res", format!("localhost:{port}"), res_port.clone(), false),
        ("/global", "localhost".into(), String::new(), true),
        ("/server", "localhost".into(), "localhost".into(), false),
        ("/named", "localhost".into(), "shared".into(), false),
        ("/env", "localhost".into(), "fromenv".into(), false),
        ("/loc", "localhost".into(), "locgroup".into(), false),
        ("/dir", "localhost".into(), "dirgroup".into(), false),
    ];
    let mut interp_of: BTreeMap<String, String> = BTreeMap::new();
    let mut pids = BTreeSet::new();
    for (path, host, group, main) in &cases {
        let p = probe_host(&a, path, host);
        let ctx = format!("[{mpm}] Host: {host}: {p}\n--- error.log ---\n{}", a.error_log());
        assert_eq!(p.f("group"), q(group), "environ['mod_wsgi.application_group'] {ctx}");
        assert_eq!(p.f("main"), if *main { "True" } else { "False" }, "main interpreter? {ctx}");
        if *main {
            assert_eq!(p.f("interp"), "0", "{ctx}");
        }
        pids.insert(p.f("pid").to_string());
        let interp = p.f("interp").to_string();
        if let Some(prev) = interp_of.insert(group.clone(), interp.clone()) {
            assert_eq!(prev, interp, "group {group:?} must always be the same interpreter: {ctx}");
        }
    }
    assert_eq!(pids.len(), 1, "[{mpm}] one Apache child serves everything: {pids:?}");
    // Seven names, seven distinct interpreters of that one process.
    let distinct: BTreeSet<&String> = interp_of.values().collect();
    assert_eq!(
        distinct.len(),
        interp_of.len(),
        "[{mpm}] every group name is an interpreter of its own: {interp_of:?}"
    );
    // Unchanged on repetition, in any order.
    for (path, host, group, _) in cases.iter().rev() {
        let p = probe_host(&a, path, host);
        assert_eq!(p.f("group"), q(group), "[{mpm}] {p}");
        assert_eq!(p.f("interp"), interp_of[group], "[{mpm}] {group:?} again: {p}");
    }
    assert_no_crash(a, &format!("[{mpm}] group names"));
}

/// WSGIApplicationGroup at server scope is inherited by VirtualHosts, which may set their own;
/// `%{SERVER}` / `%{RESOURCE}` use the VirtualHost's ServerName.
#[test]
fn virtualhost_and_server_scope_application_groups() {
    let a = embedded_one_child(Mpm::Event)
        .conf("WSGIApplicationGroup %{SERVER}")
        .vhost(
            "<VirtualHost *:{port}>\n\
             \x20   ServerName a.example\n\
             \x20   WSGIApplicationGroup vhgroup\n\
             \x20   WSGIScriptAlias /app {dir}/scripts/probe.wsgi\n\
             </VirtualHost>\n\
             <VirtualHost *:{port}>\n\
             \x20   ServerName b.example\n\
             \x20   WSGIScriptAlias /app {dir}/scripts/probe.wsgi\n\
             \x20   WSGIScriptAlias /res {dir}/scripts/probe.wsgi application-group=%{RESOURCE}\n\
             \x20   WSGIScriptAlias /global {dir}/scripts/probe.wsgi application-group=%{GLOBAL}\n\
             </VirtualHost>",
        )
        .start();
    let cases = [
        ("a.example", "/app", "vhgroup", "False"),
        ("b.example", "/app", "b.example", "False"),
        ("b.example", "/res", "b.example|/res", "False"),
        ("b.example", "/global", "", "True"),
    ];
    let mut interps = BTreeSet::new();
    for (host, path, group, main) in cases {
        let p = probe_host(&a, path, host);
        let ctx = format!("Host: {host}: {p}\n--- error.log ---\n{}", a.error_log());
        assert_eq!(p.f("group"), q(group), "{ctx}");
        assert_eq!(p.f("main"), main, "{ctx}");
        interps.insert(p.f("interp").to_string());
    }
    assert_eq!(interps.len(), cases.len(), "four groups, four interpreters: {interps:?}");
    assert_no_crash(a, "virtual hosts");
}

// ---------------------------------------------------------------------------------------------
// "Create interpreter" at LogLevel info
// ---------------------------------------------------------------------------------------------

fn create_interpreter_log_body(mpm: Mpm) {
    let a = embedded_one_child(mpm)
        .log_level("info")
        .conf(
            "WSGIScriptAlias /a {dir}/scripts/probe.wsgi\n\
             WSGIScriptAlias /b {dir}/scripts/probe.wsgi\n\
             WSGIScriptAlias /g {dir}/scripts/probe.wsgi application-group=%{GLOBAL}\n\
             WSGIScriptAlias /n {dir}/scripts/probe.wsgi application-group=named-group",
        )
        .start();
    let port = a.port;
    let host_port = format!("localhost:{port}");
    for _ in 0..3 {
        probe(&a, "/a");
        probe(&a, "/b");
        probe(&a, "/g");
        probe(&a, "/n");
        probe_host(&a, "/a", &host_port);
    }
    let expected = [
        "Create interpreter 'localhost|/a'".to_string(),
        "Create interpreter 'localhost|/b'".to_string(),
        "Create interpreter 'named-group'".to_string(),
        format!("Create interpreter 'localhost:{port}|/a'"),
    ];
    for line in &expected {
        if !a.wait_log(line, Duration::from_secs(5)) {
            a.fail(&format!("[{mpm}] the error log must say {line:?}"));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let log = a.error_log();
    for line in &expected {
        assert_eq!(log.matches(line.as_str()).count(), 1, "[{mpm}] {line:?} once in one process:\n{log}");
    }
    assert!(!log.contains("Create interpreter ''"), "[{mpm}] %{{GLOBAL}} is the main interpreter, not created:\n{log}");
    assert_no_crash(a, &format!("[{mpm}] create interpreter log"));
}

// ---------------------------------------------------------------------------------------------
// Two mounts of one script: two interpreters, unless they share a group
// ---------------------------------------------------------------------------------------------

const TWO_MOUNTS: &str = "WSGIScriptAlias /a {dir}/scripts/probe.wsgi\n\
                          WSGIScriptAlias /b {dir}/scripts/probe.wsgi\n\
                          WSGIScriptAlias /s1 {dir}/scripts/probe.wsgi application-group=same\n\
                          WSGIScriptAlias /s2 {dir}/scripts/probe.wsgi application-group=same";

/// Counters per mount: /a and /b count separately, /s1 and /s2 share one.
fn check_two_mounts(a: &Apache, what: &str) {
    let next = |path: &str, want: u32| -> Probe {
        let p = probe(a, path);
        assert_eq!(
            p.f("count"),
            want.to_string(),
            "{what}: module-level counter of {path}: {p}\n--- error.log ---\n{}",
            a.error_log()
        );
        assert_eq!(p.f("main"), "False", "{what}: {path} runs in a sub-interpreter: {p}");
        p
    };
    let a1 = next("/a", 1);
    next("/a", 2);
    let a3 = next("/a", 3);
    let b1 = next("/b", 1);
    next("/a", 4);
    next("/b", 2);
    let s1 = next("/s1", 1);
    let s2 = next("/s2", 2);
    next("/s1", 3);
    next("/b", 3);
    next("/s2", 4);

    assert_eq!(a1.f("pid"), b1.f("pid"), "{what}: one process serves both mounts");
    assert_eq!(a1.f("pid"), s1.f("pid"), "{what}: one process serves all mounts");
    assert_eq!(a1.f("interp"), a3.f("interp"), "{what}");
    assert_ne!(a1.f("interp"), b1.f("interp"), "{what}: /a and /b are two interpreters\n{a1}\n{b1}");
    assert_ne!(a1.f("token"), b1.f("token"), "{what}: the script was executed once per interpreter");
    assert_eq!(a1.f("token"), a3.f("token"), "{what}: and not again per request");
    assert_eq!(s1.f("interp"), s2.f("interp"), "{what}: application-group=same on both: one interpreter");
    assert_eq!(s1.f("token"), s2.f("token"), "{what}: ... and one module");
    assert_eq!(s1.f("group"), q("same"), "{what}");
    assert_eq!(a1.f("group"), q("localhost|/a"), "{what}");
    assert_eq!(b1.f("group"), q("localhost|/b"), "{what}");
    for p in [&a1, &b1, &s1] {
        assert_eq!(p.f("loads_here"), "1", "{what}: executed once in its interpreter: {p}");
        assert_eq!(p.f("loaded_files"), "probe.wsgi", "{what}: {p}");
    }
    let interps: BTreeSet<&str> = [a1.f("interp"), b1.f("interp"), s1.f("interp")].into();
    assert_eq!(interps.len(), 3, "{what}: three groups: {interps:?}");
}

fn two_mounts_body(mpm: Mpm) {
    let a = embedded_one_child(mpm).conf(TWO_MOUNTS).start();
    check_two_mounts(&a, &format!("[{mpm}] embedded"));
    assert_no_crash(a, &format!("[{mpm}] two mounts"));
}

#[test]
fn same_script_at_two_mounts_in_a_daemon_process() {
    let a = ApacheBuilder::new()
        .script("probe.wsgi", PROBE)
        .conf(SCRIPTS_DIR)
        .conf("WSGIDaemonProcess g processes=1 threads=4")
        .conf("WSGIProcessGroup g")
        .conf(TWO_MOUNTS)
        .start();
    check_two_mounts(&a, "daemon");
    let p = probe(&a, "/a");
    assert_eq!(p.f("process_group"), q("g"), "{p}");
    assert_no_crash(a, "daemon two mounts");
}

// ---------------------------------------------------------------------------------------------
// threading.local across requests
// ---------------------------------------------------------------------------------------------

/// One thread serves every request: a module-level threading.local keeps counting, in each
/// of two interpreters separately, requests interleaved.
fn check_thread_local(a: &Apache, what: &str) {
    let mut threads = BTreeSet::new();
    let mut pids = BTreeSet::new();
    for i in 1..=5u32 {
        for path in ["/a", "/b"] {
            let p = probe(a, path);
            let ctx = format!("{what}: request {i} to {path}: {p}\n--- error.log ---\n{}", a.error_log());
            assert_eq!(p.f("main"), "False", "{ctx}");
            assert_eq!(p.f("count"), i.to_string(), "{ctx}");
            assert_eq!(p.f("local"), i.to_string(), "threading.local must survive between requests: {ctx}");
            threads.insert(p.f("thread").to_string());
            pids.insert(p.f("pid").to_string());
        }
    }
    assert_eq!(pids.len(), 1, "{what}: {pids:?}");
    assert_eq!(threads.len(), 1, "{what}: one serving thread expected, saw idents {threads:?}");
}

fn threading_local_body(mpm: Mpm) {
    let a = ApacheBuilder::new()
        .mpm(mpm)
        .mpm_config(&one_child(mpm, 1))
        .script("probe.wsgi", PROBE)
        .conf(SCRIPTS_DIR)
        .conf("WSGIScriptAlias /a {dir}/scripts/probe.wsgi\nWSGIScriptAlias /b {dir}/scripts/probe.wsgi")
        .start();
    check_thread_local(&a, &format!("[{mpm}] embedded, one thread"));
    assert_no_crash(a, &format!("[{mpm}] threading.local"));
}

#[test]
fn threading_local_survives_between_requests_in_a_daemon_sub_interpreter() {
    let a = ApacheBuilder::new()
        .script("probe.wsgi", PROBE)
        .conf(SCRIPTS_DIR)
        .conf("WSGIDaemonProcess one processes=1 threads=1")
        .conf("WSGIProcessGroup one")
        .conf("WSGIScriptAlias /a {dir}/scripts/probe.wsgi\nWSGIScriptAlias /b {dir}/scripts/probe.wsgi")
        .start();
    check_thread_local(&a, "daemon threads=1");
    assert_no_crash(a, "daemon threading.local");
}

// ---------------------------------------------------------------------------------------------
// Reloading one app leaves the other alone (embedded mode: WSGIScriptReloading On)
// ---------------------------------------------------------------------------------------------

fn reload_body(mpm: Mpm) {
    let a = embedded_one_child(mpm)
        .script("a.wsgi", PROBE)
        .script("b.wsgi", PROBE)
        .conf("WSGIScriptAlias /a {dir}/scripts/a.wsgi\nWSGIScriptAlias /b {dir}/scripts/b.wsgi")
        .start();
    let a1 = probe(&a, "/a");
    let b1 = probe(&a, "/b");
    let a2 = probe(&a, "/a");
    let b2 = probe(&a, "/b");
    let ctx = |m: &str| format!("[{mpm}] {m}\n{a1}\n{b1}\n--- error.log ---\n{}", a.error_log());
    assert_eq!(a1.f("pid"), b1.f("pid"), "{}", ctx("one process"));
    assert_eq!((a1.f("main"), b1.f("main")), ("False", "False"), "{}", ctx("two sub-interpreters"));
    assert_ne!(a1.f("interp"), b1.f("interp"), "{}", ctx("two interpreters"));
    assert_eq!(a1.f("loaded_files"), "a.wsgi", "{}", ctx("b.wsgi is not in /a's interpreter"));
    assert_eq!(b1.f("loaded_files"), "b.wsgi", "{}", ctx("a.wsgi is not in /b's interpreter"));
    assert_eq!((a2.f("count"), a2.f("token")), ("2", a1.f("token")), "{}", ctx("no reload yet"));
    assert_eq!((b2.f("count"), b2.f("token")), ("2", b1.f("token")), "{}", ctx("no reload yet"));

    // Touch a.wsgi (new content and a clearly newer mtime).
    rewrite_script(&a.dir.join("scripts/a.wsgi"), &format!("{PROBE}\n# touched\n"));

    let a3 = probe(&a, "/a");
    assert_ne!(a3.f("token"), a1.f("token"), "[{mpm}] /a must be reloaded after its script changed: {a3}");
    assert_eq!(a3.f("count"), "1", "[{mpm}] fresh module state after the reload: {a3}");
    assert_eq!(a3.f("interp"), a1.f("interp"), "[{mpm}] reloaded within the same interpreter: {a3}");
    assert_eq!(a3.f("loads_here"), "2", "[{mpm}] the interpreter's own state survives the reload: {a3}");
    assert_eq!(a3.f("pid"), a1.f("pid"), "[{mpm}] {a3}");

    let b3 = probe(&a, "/b");
    assert_eq!(b3.f("token"), b1.f("token"), "[{mpm}] /b must not be reloaded when a.wsgi changes: {b3}");
    assert_eq!(b3.f("count"), "3", "[{mpm}] /b keeps its module state: {b3}");
    assert_eq!(b3.f("loads_here"), "1", "[{mpm}] {b3}");
    assert_eq!(b3.f("loaded_files"), "b.wsgi", "[{mpm}] {b3}");
    assert_eq!(b3.f("interp"), b1.f("interp"), "[{mpm}] {b3}");

    let a4 = probe(&a, "/a");
    assert_eq!((a4.f("count"), a4.f("token")), ("2", a3.f("token")), "[{mpm}] reloaded once only: {a4}");
    assert_no_crash(a, &format!("[{mpm}] reload"));
}

// ---------------------------------------------------------------------------------------------
// WSGIImportScript into a named group
// ---------------------------------------------------------------------------------------------

/// /pre (group pregroup) sees what the preload did, /other and /global do not; preapp.wsgi,
/// preloaded into pregroup too, is not executed again by its first request.
fn check_preload(a: &Apache, what: &str, process_group: &str) {
    let pre = probe(a, "/pre");
    let ctx = |m: &str| format!("{what}: {m}\n{pre}\n--- error.log ---\n{}", a.error_log());
    assert_eq!(pre.f("group"), q("pregroup"), "{}", ctx("group"));
    assert_eq!(pre.f("process_group"), q(process_group), "{}", ctx("process group"));
    assert_eq!(pre.f("main"), "False", "{}", ctx("pregroup is a sub-interpreter"));
    assert_eq!(pre.f("preloaded"), q("preload-ok"), "{}", ctx("preload.py ran in pregroup"));
    assert_eq!(pre.f("preload_interp"), pre.f("interp"), "{}", ctx("... in this very interpreter"));

    let app = probe(a, "/preapp");
    assert_eq!(app.f("interp"), pre.f("interp"), "{what}: /preapp is in pregroup too: {app}");
    assert_eq!(app.f("count"), "1", "{what}: {app}");
    assert_eq!(
        app.f("loads_here"),
        "1",
        "{what}: the preloaded preapp.wsgi serves its first request without being executed again: {app}"
    );
    assert_eq!(app.f("loaded_files"), "preapp.wsgi,probe.wsgi", "{what}: {app}");

    for path in ["/other", "/global"] {
        let p = probe(a, path);
        assert_eq!(p.f("preloaded"), "None", "{what}: {path} is in another interpreter than pregroup: {p}");
        assert_eq!(p.f("preload_interp"), "None", "{what}: {p}");
        assert_ne!(p.f("interp"), pre.f("interp"), "{what}: {p}");
        assert_eq!(p.f("loaded_files"), "probe.wsgi", "{what}: {p}");
    }
    let g = probe(a, "/global");
    assert_eq!((g.f("group"), g.f("main")), ("''", "True"), "{what}: {g}");
}

fn preload_builder(mpm: Mpm) -> ApacheBuilder {
    ApacheBuilder::new()
        .mpm(mpm)
        .mpm_config(&one_child(mpm, 4))
        .log_level("info")
        .script("probe.wsgi", PROBE)
        .script("preapp.wsgi", PROBE)
        .script("preload.py", PRELOAD)
        .conf(SCRIPTS_DIR)
}

const PRELOAD_MOUNTS: &str = "WSGIScriptAlias /pre {dir}/scripts/probe.wsgi application-group=pregroup\n\
                              WSGIScriptAlias /preapp {dir}/scripts/preapp.wsgi application-group=pregroup\n\
                              WSGIScriptAlias /other {dir}/scripts/probe.wsgi\n\
                              WSGIScriptAlias /global {dir}/scripts/probe.wsgi application-group=%{GLOBAL}";

fn preload_embedded_body(mpm: Mpm) {
    let a = preload_builder(mpm)
        .conf(
            "WSGIImportScript {dir}/scripts/preload.py process-group=%{GLOBAL} application-group=pregroup\n\
             WSGIImportScript {dir}/scripts/preapp.wsgi process-group=%{GLOBAL} application-group=pregroup",
        )
        .conf(PRELOAD_MOUNTS)
        .start();
    // At child start, before any request.
    if !a.wait_log("Create interpreter 'pregroup'", Duration::from_secs(10)) {
        a.fail(&format!("[{mpm}] the Apache child must create 'pregroup' at start for WSGIImportScript"));
    }
    check_preload(&a, &format!("[{mpm}] embedded"), "");
    assert_no_crash(a, &format!("[{mpm}] preload"));
}

#[test]
fn import_script_preloads_into_its_application_group_in_a_daemon() {
    let a = preload_builder(Mpm::Event)
        .conf("WSGIDaemonProcess pg processes=1 threads=2")
        .conf(
            "WSGIImportScript {dir}/scripts/preload.py process-group=pg application-group=pregroup\n\
             WSGIImportScript {dir}/scripts/preapp.wsgi process-group=pg application-group=pregroup",
        )
        .conf("WSGIProcessGroup pg")
        .conf(PRELOAD_MOUNTS)
        .start();
    if !a.wait_log("Create interpreter 'pregroup'", Duration::from_secs(15)) {
        a.fail("the daemon process must create 'pregroup' at start for WSGIImportScript");
    }
    check_preload(&a, "daemon", "pg");
    assert_no_crash(a, "daemon preload");
}

// ---------------------------------------------------------------------------------------------
// The mod_wsgi module
// ---------------------------------------------------------------------------------------------

/// `import mod_wsgi` in the default group, in %{GLOBAL} and in a named group; its
/// application_group is the interpreter's true name.
fn check_mod_wsgi_module(a: &Apache, what: &str, process_group: &str, procs: Option<&str>, threads: Option<&str>) {
    let mut versions = BTreeSet::new();
    for (path, group, main) in [("/a", "localhost|/a", "False"), ("/g", "", "True"), ("/s", "shared", "False")] {
        let p = probe(a, path);
        let ctx = format!("{what}: {path}: {p}\n--- error.log ---\n{}", a.error_log());
        assert_eq!(p.f("module"), "ok", "`import mod_wsgi` must work in every interpreter: {ctx}");
        assert_eq!(p.f("main"), main, "{ctx}");
        assert_eq!(p.f("group"), q(group), "{ctx}");
        assert_eq!(p.f("module.application_group"), q(group), "mod_wsgi.application_group: {ctx}");
        assert_eq!(p.f("module.process_group"), q(process_group), "mod_wsgi.process_group: {ctx}");
        assert_eq!(p.f("module.version_ok"), "True", "mod_wsgi.version is a tuple of ints: {ctx}");
        assert_eq!(p.f("module.version"), p.f("environ_version"), "same as environ['mod_wsgi.version']: {ctx}");
        assert_eq!(p.f("module.ints_ok"), "True", "maximum_processes / threads_per_process are ints: {ctx}");
        for k in ["module.maximum_processes", "module.threads_per_process"] {
            let n: i64 = p.f(k).parse().unwrap_or(0);
            assert!(n >= 1, "{k} >= 1: {ctx}");
        }
        if let Some(n) = procs {
            assert_eq!(p.f("module.maximum_processes"), n, "{ctx}");
        }
        if let Some(n) = threads {
            assert_eq!(p.f("module.threads_per_process"), n, "{ctx}");
        }
        versions.insert(p.f("module.version").to_string());
    }
    assert_eq!(versions.len(), 1, "{what}: one mod_wsgi.version: {versions:?}");
}

const MODULE_MOUNTS: &str = "WSGIScriptAlias /a {dir}/scripts/probe.wsgi\n\
                             WSGIScriptAlias /g {dir}/scripts/probe.wsgi application-group=%{GLOBAL}\n\
                             WSGIScriptAlias /s {dir}/scripts/probe.wsgi application-group=shared";

fn mod_wsgi_module_embedded_body(mpm: Mpm) {
    let a = embedded_one_child(mpm).conf(MODULE_MOUNTS).start();
    // As mod_wsgi reports them: the MPM's process limit (ServerLimit 1) and threads per child.
    let threads = if mpm.is_threaded() { "4" } else { "1" };
    check_mod_wsgi_module(&a, &format!("[{mpm}] embedded"), "", Some("1"), Some(threads));
    assert_no_crash(a, &format!("[{mpm}] mod_wsgi module"));
}

#[test]
fn mod_wsgi_module_in_every_interpreter_of_a_daemon() {
    let a = ApacheBuilder::new()
        .script("probe.wsgi", PROBE)
        .conf(SCRIPTS_DIR)
        .conf("WSGIDaemonProcess modgroup processes=2 threads=3")
        .conf("WSGIProcessGroup modgroup")
        .conf(MODULE_MOUNTS)
        .start();
    check_mod_wsgi_module(&a, "daemon processes=2 threads=3", "modgroup", Some("2"), Some("3"));
    assert_no_crash(a, "daemon mod_wsgi module");
}

// ---------------------------------------------------------------------------------------------
// print(), wsgi.errors, wsgi.input, wsgi.file_wrapper in a sub-interpreter
// ---------------------------------------------------------------------------------------------

fn blob() -> Vec<u8> {
    (0..200 * 1024u32).map(|i| ((i * 7 + i / 1000) % 251) as u8).collect()
}

fn io_builder(b: ApacheBuilder) -> ApacheBuilder {
    b.script("io.wsgi", IO_APP).file("scripts/blob.bin", blob()).conf(SCRIPTS_DIR)
}

fn check_io(a: &Apache, what: &str) {
    let group = "localhost|/io";
    let main = |r: &Response| r.header("X-Main").unwrap_or("").to_string();

    let r = get_host(a, "/io/print?nonce-print", "localhost");
    assert_eq!((r.status, r.text().as_str()), (200, "printed"), "{what}: {r}\n{}", a.error_log());
    assert_eq!(main(&r), "False", "{what}: the app must run in a sub-interpreter: {r}");
    for line in [format!("PRINT-MARK nonce-print {group}"), format!("STDERR-MARK nonce-print {group}")] {
        if !a.wait_log(&line, Duration::from_secs(5)) {
            a.fail(&format!("{what}: print() in a sub-interpreter must reach the error log: {line:?}"));
        }
    }

    let r = a.get("/io/errors?nonce-errors");
    assert_eq!((r.status, r.text().as_str()), (200, "written"), "{what}: {r}\n{}", a.error_log());
    let line = format!("ERRORS-MARK nonce-errors {group}");
    if !a.wait_log(&line, Duration::from_secs(5)) {
        a.fail(&format!("{what}: wsgi.errors in a sub-interpreter must reach the error log: {line:?}"));
    }

    let body: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
    let r = a.post("/io/echo", "application/octet-stream", &body);
    assert_eq!(r.status, 200, "{what}: {r}\n{}", a.error_log());
    assert_eq!(main(&r), "False", "{what}");
    assert!(r.body == body, "{what}: wsgi.input echo: got {} bytes, sent {}", r.body.len(), body.len());

    let r = a.get("/io/file");
    assert_eq!(r.status, 200, "{what}: {r}\n{}", a.error_log());
    assert_eq!(main(&r), "False", "{what}");
    assert!(r.complete && r.body == blob(), "{what}: wsgi.file_wrapper: got {} bytes", r.body.len());
}

fn io_embedded_body(mpm: Mpm) {
    let a = io_builder(ApacheBuilder::new().mpm(mpm).mpm_config(&one_child(mpm, 4)))
        .conf("WSGIScriptAlias /io {dir}/scripts/io.wsgi")
        .start();
    check_io(&a, &format!("[{mpm}] embedded"));
    assert_no_crash(a, &format!("[{mpm}] io"));
}

#[test]
fn output_and_request_io_in_a_daemon_sub_interpreter() {
    let a = io_builder(ApacheBuilder::new())
        .conf("WSGIDaemonProcess io processes=1 threads=2")
        .conf("WSGIScriptAlias /io {dir}/scripts/io.wsgi process-group=io")
        .start();
    check_io(&a, "daemon");
    assert_no_crash(a, "daemon io");
}

// ---------------------------------------------------------------------------------------------
// Two Django projects in one VirtualHost, one process
// ---------------------------------------------------------------------------------------------

/// `target/itest-venv-django` with Django from the package index.
fn django_venv() -> PathBuf {
    common::venv::pip_venv("itest-venv-django", &["django"], "django")
}

const DJANGO_SETTINGS: &str = r#"
SECRET_KEY = 'app-groups-test-{name}'
DEBUG = False
ALLOWED_HOSTS = ['*']
ROOT_URLCONF = '{name}.urls'
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True
GREETING = '{greeting}'
"#;

const DJANGO_URLS: &str = r#"
from django.urls import path
from . import views

urlpatterns = [
    path('', views.greet),
    path('info', views.info),
]
"#;

const DJANGO_VIEWS: &str = r#"
import os
import _xxsubinterpreters as _subinterp
from django.conf import settings
from django.http import HttpResponse

def greet(request):
    return HttpResponse(settings.GREETING, content_type='text/plain')

def info(request):
    lines = [
        settings.GREETING,
        settings.SETTINGS_MODULE,
        request.path,
        str(request.META.get('mod_wsgi.application_group')),
        str(request.META.get('mod_wsgi.process_group')),
        str(_subinterp.get_current() == _subinterp.get_main()),
        str(os.getpid()),
    ]
    return HttpResponse('\n'.join(lines), content_type='text/plain')
"#;

/// The classic layout; DJANGO_SETTINGS_MODULE by plain assignment (setdefault would keep the
/// first project's value, os.environ being process-wide).
const DJANGO_WSGI: &str = r#"
import os, sys
project_dir = os.path.dirname(os.path.abspath(__file__))
if project_dir not in sys.path:
    sys.path.insert(0, project_dir)
os.environ['DJANGO_SETTINGS_MODULE'] = '{name}.settings'
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
"#;

/// Writes `django/<name>/wsgi.wsgi` and the package `django/<name>/<name>/`.
fn django_project(b: ApacheBuilder, name: &str, greeting: &str) -> ApacheBuilder {
    let fill = |s: &str| s.replace("{name}", name).replace("{greeting}", greeting);
    b.file(&format!("django/{name}/wsgi.wsgi"), fill(DJANGO_WSGI))
        .file(&format!("django/{name}/{name}/__init__.py"), "")
        .file(&format!("django/{name}/{name}/settings.py"), fill(DJANGO_SETTINGS))
        .file(&format!("django/{name}/{name}/urls.py"), DJANGO_URLS)
        .file(&format!("django/{name}/{name}/views.py"), DJANGO_VIEWS)
}

fn django_builder(mpm: Mpm, mpm_config: &str) -> ApacheBuilder {
    let b = ApacheBuilder::new()
        .mpm(mpm)
        .mpm_config(mpm_config)
        .start_timeout(Duration::from_secs(30))
        .conf("<Directory {dir}/django>\n    Require all granted\n</Directory>");
    let b = django_project(b, "sitea", "site a");
    django_project(b, "siteb", "site b")
}

fn django_vhost(extra: &str) -> String {
    format!(
        "<VirtualHost *:{{port}}>\n\
         \x20   ServerName localhost\n\
         {extra}\
         \x20   WSGIScriptAlias /sitea {{dir}}/django/sitea/wsgi.wsgi\n\
         \x20   WSGIScriptAlias /siteb {{dir}}/django/siteb/wsgi.wsgi\n\
         </VirtualHost>\n"
    )
}

/// Each project answers with its own settings, interleaved, sequentially and concurrently,
/// from one process.
fn check_django(a: &Apache, what: &str, process_group: &str) {
    // (site, response lines) for a, b, a: first what each project answers, then where.
    let mut answers = Vec::new();
    for site in ["sitea", "siteb", "sitea"] {
        let r = get_host(a, &format!("/{site}/info"), "localhost");
        let ctx = format!("{what}: /{site}/info: {r}\n--- error.log ---\n{}", a.error_log());
        assert_eq!(r.status, 200, "{ctx}");
        let lines: Vec<String> = r.text().lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 7, "{ctx}");
        answers.push((site, lines, ctx));
    }
    for (site, lines, ctx) in &answers {
        let letter = &site[4..];
        assert_eq!(lines[0], format!("site {letter}"), "settings.GREETING of {site}: {ctx}");
        assert_eq!(lines[1], format!("{site}.settings"), "settings module of {site}: {ctx}");
        assert_eq!(lines[2], format!("/{site}/info"), "request.path (SCRIPT_NAME + PATH_INFO): {ctx}");
    }
    let mut pids = BTreeSet::new();
    for (site, lines, ctx) in &answers {
        assert_eq!(lines[3], format!("localhost|/{site}"), "application group: {ctx}");
        assert_eq!(lines[4], process_group, "process group: {ctx}");
        assert_eq!(lines[5], "False", "{site} runs in a sub-interpreter: {ctx}");
        pids.insert(lines[6].clone());
    }
    assert_eq!(pids.len(), 1, "{what}: both projects are served by one process: {pids:?}");

    for i in 0..10 {
        for (site, greeting) in [("sitea", "site a"), ("siteb", "site b")] {
            let r = a.get(&format!("/{site}/"));
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, greeting),
                "{what}: round {i}, /{site}/: {r}\n--- error.log ---\n{}",
                a.error_log()
            );
        }
    }

    // Concurrently: four clients, each alternating between the two projects.
    let failures: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    let mut bad = Vec::new();
                    for i in 0..8 {
                        let (site, greeting) = if (i + t) % 2 == 0 { ("sitea", "site a") } else { ("siteb", "site b") };
                        match a.try_request(&http_request("GET", &format!("/{site}/"), &[("Connection", "close")], b"")) {
                            Ok(r) if r.status == 200 && r.text() == greeting => {}
                            Ok(r) => bad.push(format!("/{site}/ -> {} {:?}", r.status, r.text())),
                            Err(e) => bad.push(format!("/{site}/ -> {e}")),
                        }
                    }
                    bad
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{what}: concurrent interleaved requests: {} wrong answers, e.g. {:?}\n--- error.log ---\n{}",
        failures.len(),
        &failures[..failures.len().min(6)],
        a.error_log()
    );
    let r = a.get("/sitea/nope");
    assert_eq!(r.status, 404, "{what}: Django's own 404: {r}");
}

fn django_embedded_body(mpm: Mpm) {
    let venv = django_venv();
    let a = django_builder(mpm, &one_child(mpm, 4))
        .conf(&format!("WSGIPythonHome {}", venv.display()))
        .vhost(&django_vhost(""))
        .start();
    check_django(&a, &format!("[{mpm}] embedded, WSGIPythonHome {}", venv.display()), "");
    assert_no_crash(a, &format!("[{mpm}] django embedded"));
}

fn django_daemon_body(mpm: Mpm) {
    let venv = django_venv();
    let a = django_builder(mpm, &one_child(mpm, 4))
        .conf(&format!("WSGIDaemonProcess django processes=1 threads=4 python-home={}", venv.display()))
        .vhost(&django_vhost("    WSGIProcessGroup django\n"))
        .start();
    check_django(&a, &format!("[{mpm}] daemon, python-home={}", venv.display()), "django");
    assert_no_crash(a, &format!("[{mpm}] django daemon"));
}

// ---------------------------------------------------------------------------------------------
// Extensions that cannot live in a sub-interpreter: one coded line names the cause and the fix
// ---------------------------------------------------------------------------------------------

/// Imports the pyo3-built part of Debian's python3-cryptography: it can be initialised in one
/// interpreter per process only, so a second group's import fails with an ImportError.
const PYO3_EXTENSION_APP: &str = r#"
from cryptography.hazmat.bindings import _rust

def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'imported']
"#;

/// Calls the simplified GIL API from a sub-interpreter, as numpy-style extensions do: in a
/// sub-interpreter PyGILState_Ensure waits for the GIL this thread already holds, for ever.
const GILSTATE_APP: &str = r#"
import ctypes

def application(environ, start_response):
    ctypes.pythonapi.PyGILState_Ensure()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'unreachable']
"#;

fn extension_refusal_body(mpm: Mpm) {
    let a = ApacheBuilder::new()
        .mpm(mpm)
        .mpm_config(&one_child(mpm, 4))
        .script("ext.wsgi", PYO3_EXTENSION_APP)
        .script("probe.wsgi", PROBE)
        .conf(SCRIPTS_DIR)
        .conf("WSGIScriptAlias /first {dir}/scripts/ext.wsgi")
        .conf("WSGIScriptAlias /second {dir}/scripts/ext.wsgi")
        .conf("WSGIScriptAlias /probe {dir}/scripts/probe.wsgi")
        .start();
    let r = a.get("/first");
    assert_eq!((r.status, r.text().as_str()), (200, "imported"), "[{mpm}] the first interpreter may import it: {r}");
    let r = a.get("/second");
    assert_eq!(r.status, 500, "[{mpm}] the second interpreter cannot: {r}");
    let log = a.error_log();
    let hints: Vec<&str> = log.lines().filter(|l| l.contains("WR0124")).collect();
    assert_eq!(hints.len(), 1, "[{mpm}] one hint line for the one failure:\n{log}");
    assert!(
        hints[0].contains("'localhost|/second'") && hints[0].contains("WSGIApplicationGroup %{GLOBAL}"),
        "[{mpm}] the hint names the group and the fix: {}",
        hints[0]
    );
    assert!(log.contains("once per interpreter process"), "[{mpm}] the original error is logged too:\n{log}");
    // The process keeps serving other groups.
    let p = probe(&a, "/probe");
    assert_eq!(p.f("group"), q("localhost|/probe"), "{p}");
    assert_no_crash(a, &format!("[{mpm}] extension refusal"));
}

per_mpm! {
    an_extension_refusing_a_second_interpreter_gets_a_hint => extension_refusal_body;
}

#[test]
fn a_request_stuck_in_a_sub_interpreter_is_named_with_the_fix_and_the_process_replaced() {
    let a = ApacheBuilder::new()
        .log_level("warn wsgi:info")
        .script("hang.wsgi", GILSTATE_APP)
        .script("probe.wsgi", PROBE)
        .conf(SCRIPTS_DIR)
        .conf("WSGIDaemonProcess stuck processes=1 threads=2 deadlock-timeout=2")
        .conf("WSGIScriptAlias /hang {dir}/scripts/hang.wsgi process-group=stuck")
        .conf("WSGIScriptAlias /probe {dir}/scripts/probe.wsgi process-group=stuck")
        .start();
    let before = probe(&a, "/probe");
    let t = Instant::now();
    let r = a.get("/hang");
    assert_eq!(r.status, 502, "the hung process is replaced and the request fails: {r}");
    assert!(t.elapsed() < Duration::from_secs(15), "found by deadlock-timeout, not by a socket timeout: {:?}", t.elapsed());
    let log = a.error_log();
    assert!(log.contains("WR0125"), "the deadlock is logged:\n{log}");
    let hint = log.lines().find(|l| l.contains("WR0124")).unwrap_or_else(|| a.fail("no WR0124 line naming the stuck group"));
    assert!(
        hint.contains("'localhost|/hang'") && hint.contains("WSGIApplicationGroup %{GLOBAL}") && hint.contains("deadlock-timeout"),
        "the hint names the group, the fix and the timeout: {hint}"
    );
    // A new process serves the next request.
    let after = probe(&a, "/probe");
    assert_ne!(after.f("pid"), before.f("pid"), "the deadlocked process was replaced");
    assert_no_crash(a, "stuck sub-interpreter");
}

// ---------------------------------------------------------------------------------------------
// A CPU-bound request in a sub-interpreter does not hold up the group's other requests
// ---------------------------------------------------------------------------------------------

const SPIN_APP: &str = r#"
import time

def application(environ, start_response):
    if environ['QUERY_STRING'] == 'spin':
        end = time.time() + 2.0
        n = 0
        while time.time() < end:
            n += 1
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'done']
"#;

fn cpu_bound_neighbour_body(mpm: Mpm) {
    let a = ApacheBuilder::new()
        .mpm(mpm)
        .mpm_config(&one_child(mpm, 4))
        .script("spin.wsgi", SPIN_APP)
        .conf(SCRIPTS_DIR)
        .conf("WSGIScriptAlias /spin {dir}/scripts/spin.wsgi")
        .start();
    assert_eq!(a.get("/spin").text(), "done", "warm-up");
    std::thread::scope(|s| {
        let busy = s.spawn(|| a.get("/spin?spin"));
        std::thread::sleep(Duration::from_millis(300));
        // Same group, same process, another thread: Python's switch interval (5 ms) applies.
        let t = Instant::now();
        let r = a.get("/spin");
        let took = t.elapsed();
        assert_eq!(r.text(), "done", "[{mpm}] {r}");
        assert!(took < Duration::from_millis(800), "[{mpm}] a quick request waited {took:?} behind a CPU-bound one in its own sub-interpreter");
        assert_eq!(busy.join().unwrap().status, 200);
    });
    assert_no_crash(a, &format!("[{mpm}] cpu-bound neighbour"));
}

#[test]
fn a_cpu_bound_request_does_not_stall_its_groups_other_requests_event() {
    cpu_bound_neighbour_body(Mpm::Event);
}

#[test]
fn a_cpu_bound_request_does_not_stall_its_groups_other_requests_worker() {
    cpu_bound_neighbour_body(Mpm::Worker);
}
