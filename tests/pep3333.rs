//! PEP 3333 conformance of our module against a real Apache under each MPM, in embedded mode
//! (`embedded::*`: the applications run in the Apache children) and in daemon mode (`daemon::*`:
//! every request is served by `WSGIDaemonProcess g processes=1 threads=4` + `WSGIProcessGroup g`,
//! or by another daemon group where a test says so). The suite is written once, inside
//! `mode_suite!` (tests/common/mode.rs); what genuinely differs between the modes is in
//! `if MODE == ...` branches that say why.
//!
//! Each test starts one Apache per MPM and runs several checks against it; the main applications
//! are also mounted a second time wrapped in `wsgiref.validate.validator` (with `WSGIWarning`
//! turned into an error), which must not change what the client sees. Every server is stopped
//! with `Mode::stop`: no crash, and no process (daemon processes included) outlives Apache.

mod common;

use common::apps::*;
use common::mode::*;
use common::*;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers (the applications and the helpers they need are in tests/common/apps.rs)
// ---------------------------------------------------------------------------------------------

/// A builder for our module in `mode` under `mpm`, with the given scripts and configuration
/// (after the mode's preamble).
fn builder(mode: Mode, mpm: Mpm, scripts: &[(impl AsRef<str>, impl AsRef<str>)], conf: &str) -> ApacheBuilder {
    let mut b = mode.builder(mpm);
    for (name, src) in scripts {
        b = b.script(name.as_ref(), src.as_ref());
    }
    b.conf(conf).conf(SCRIPTS_DIR)
}

fn server(mode: Mode, mpm: Mpm, scripts: &[(impl AsRef<str>, impl AsRef<str>)], conf: &str) -> Apache {
    builder(mode, mpm, scripts, conf).start()
}

fn input_server(mode: Mode, mpm: Mpm) -> Apache {
    server(mode, mpm, &plain_and_validated("input", INPUT_APP), INPUT_CONF)
}

fn out_server(mode: Mode, mpm: Mpm) -> Apache {
    server(mode, mpm, &plain_and_validated("out", OUT_APP), &plain_and_validated_mounts("out"))
}

// ---------------------------------------------------------------------------------------------
// environ
// ---------------------------------------------------------------------------------------------

/// Mounted in both modes: `/auth_loc` and `/auth_opt` pass Authorization (directive, mount
/// option), `/` is the whole site.
const ENV_CONF: &str = "\
WSGIScriptAlias /env_v {dir}/scripts/env_v.wsgi
WSGIScriptAlias /env {dir}/scripts/env.wsgi
WSGIScriptAlias /auth_loc {dir}/scripts/env.wsgi
WSGIScriptAlias /auth_opt {dir}/scripts/env.wsgi pass-authorization=On
<Location /auth_loc>
    WSGIPassAuthorization On
</Location>
WSGIScriptAlias / {dir}/scripts/env.wsgi
";

/// Daemon mode only, before `ENV_CONF`: what `wsgi.multithread`/`wsgi.multiprocess` say
/// depends on the group's options. `g` (processes=1 threads=4): multithread, and multiprocess
/// because processes= is given; `gnp` (threads=4, no processes=): multithread, not
/// multiprocess; `g2` (processes=2 threads=1): multiprocess, not multithread.
const ENV_DAEMON_GROUPS_CONF: &str = "\
WSGIDaemonProcess gnp threads=4
WSGIDaemonProcess g2 processes=2 threads=1
WSGIScriptAlias /env_np {dir}/scripts/env.wsgi process-group=gnp
WSGIScriptAlias /env_2 {dir}/scripts/env.wsgi process-group=g2
";

struct EnvWant<'a> {
    mount: &'a str,
    script: &'a str,
    group: &'a str,
    multithread: &'a str,
    multiprocess: &'a str,
    validated: bool,
}

fn check_env(a: &Apache, env: &HashMap<String, String>, w: &EnvWant) {
    let e = |k: &str| env_get(env, k).to_string();
    let mount = w.mount;
    let ctx = format!("[{} {mount}] {env:#?}", a.mpm);
    // CGI variables (values are reprs of str).
    assert_eq!(e("REQUEST_METHOD"), "'GET'", "{ctx}");
    assert_eq!(e("SCRIPT_NAME"), format!("'{mount}'"), "{ctx}");
    // %C3%A9 decodes to the bytes C3 A9, which latin-1 maps to 'Ã©'.
    assert_eq!(e("PATH_INFO"), "'/cafÃ©'", "latin-1 PATH_INFO {ctx}");
    assert_eq!(e("QUERY_STRING"), "'a=1&b=%20'", "{ctx}");
    assert_eq!(e("REQUEST_URI"), format!("'{mount}/caf%C3%A9?a=1&b=%20'"), "{ctx}");
    assert_eq!(e("SERVER_PROTOCOL"), "'HTTP/1.1'", "{ctx}");
    assert_eq!(e("SERVER_NAME"), "'localhost'", "{ctx}");
    assert_eq!(e("SERVER_PORT"), format!("'{}'", a.port), "{ctx}");
    assert_eq!(e("SERVER_ADDR"), "'127.0.0.1'", "{ctx}");
    assert_eq!(e("REMOTE_ADDR"), "'127.0.0.1'", "{ctx}");
    let rport = e("REMOTE_PORT");
    assert!(rport.trim_matches('\'').parse::<u16>().is_ok_and(|p| p > 0), "REMOTE_PORT {rport} {ctx}");
    assert_eq!(e("GATEWAY_INTERFACE"), "'CGI/1.1'", "{ctx}");
    assert_eq!(e("REQUEST_SCHEME"), "'http'", "{ctx}");
    assert!(e("SERVER_SOFTWARE").starts_with("'Apache"), "{ctx}");
    assert_eq!(e("SCRIPT_FILENAME"), format!("'{}/scripts/{}'", a.dir.display(), w.script), "{ctx}");
    assert_eq!(e("DOCUMENT_ROOT"), format!("'{}/htdocs'", a.dir.display()), "{ctx}");
    // HTTP_*: good headers passed, latin-1 decoded; underscore names, Proxy and Authorization not.
    assert_eq!(e("HTTP_HOST"), format!("'localhost:{}'", a.port), "{ctx}");
    assert_eq!(e("HTTP_X_GOOD_HEADER"), "'good'", "{ctx}");
    assert_eq!(e("HTTP_X_LATIN"), "'café'", "{ctx}");
    assert!(!env.keys().any(|k| k.to_ascii_uppercase().contains("UNDER")), "underscore header leaked {ctx}");
    assert!(!env.contains_key("HTTP_PROXY"), "{ctx}");
    assert!(!env.contains_key("HTTP_AUTHORIZATION"), "Authorization must be hidden by default {ctx}");
    // wsgi.*
    assert_eq!(e("wsgi.version"), "(1, 0)", "{ctx}");
    assert_eq!(e("wsgi.url_scheme"), "'http'", "{ctx}");
    assert_eq!(e("wsgi.multithread"), w.multithread, "wsgi.multithread {ctx}");
    assert_eq!(e("wsgi.multiprocess"), w.multiprocess, "wsgi.multiprocess {ctx}");
    assert_eq!(e("wsgi.run_once"), "False", "{ctx}");
    // mod_wsgi always sets it True: Apache ends every body (Content-Length enforced, chunked
    // decoded), so reading to EOF is safe.
    assert_eq!(e("wsgi.input_terminated"), "True", "wsgi.input_terminated {ctx}");
    for k in ["wsgi.input", "wsgi.errors", "wsgi.file_wrapper"] {
        assert!(e(k).starts_with('<'), "{k} {ctx}");
    }
    // mod_wsgi.* and apache.version
    assert_eq!(e("mod_wsgi.process_group"), format!("'{}'", w.group), "mod_wsgi.process_group {ctx}");
    assert_eq!(
        e("mod_wsgi.application_group"),
        format!("'localhost:{}|{mount}'", a.port),
        "default %{{RESOURCE}} group {ctx}"
    );
    assert_eq!(e("mod_wsgi.callable_object"), "'application'", "{ctx}");
    assert_eq!(e("mod_wsgi.script_reloading"), "'1'", "{ctx}");
    let v = e("mod_wsgi.version");
    let parts: Vec<&str> = v.trim_start_matches('(').trim_end_matches(')').split(", ").collect();
    assert!(
        v.starts_with('(') && parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "mod_wsgi.version {v} {ctx}"
    );
    let rid = e("mod_wsgi.request_id");
    assert!(rid.starts_with('\'') && rid.len() > 2, "mod_wsgi.request_id {rid} {ctx}");
    assert!(e("apache.version").starts_with("(2, 4, "), "{ctx}");
    // Types and APIs.
    for k in [
        "@input_api",
        "@errors_api",
        "@file_wrapper_callable",
        "@keys_are_str",
        "@cgi_values_are_str",
        "@multithread_is_bool",
        "@multiprocess_is_bool",
        "@run_once_is_bool",
    ] {
        assert_eq!(e(k), "True", "{k} {ctx}");
    }
    assert_eq!(e("@validated"), if w.validated { "True" } else { "False" }, "{ctx}");
}

/// The environ each mount of the environ test must see.
fn env_wants(mode: Mode, mpm: Mpm) -> Vec<EnvWant<'static>> {
    let g = mode.process_group();
    match mode {
        // An Apache child: multithread under the threaded MPMs; the default sizing allows
        // several child processes under every MPM.
        Mode::Embedded => {
            let mt = if mpm.is_threaded() { "True" } else { "False" };
            vec![
                EnvWant { mount: "/env", script: "env.wsgi", group: g, multithread: mt, multiprocess: "True", validated: false },
                EnvWant { mount: "/env_v", script: "env_v.wsgi", group: g, multithread: mt, multiprocess: "True", validated: true },
            ]
        }
        // The group's options decide (see ENV_DAEMON_GROUPS_CONF), whatever the MPM.
        Mode::Daemon => vec![
            EnvWant { mount: "/env", script: "env.wsgi", group: g, multithread: "True", multiprocess: "True", validated: false },
            EnvWant { mount: "/env_v", script: "env_v.wsgi", group: g, multithread: "True", multiprocess: "True", validated: true },
            EnvWant { mount: "/env_np", script: "env.wsgi", group: "gnp", multithread: "True", multiprocess: "False", validated: false },
            EnvWant { mount: "/env_2", script: "env.wsgi", group: "g2", multithread: "False", multiprocess: "True", validated: false },
        ],
    }
}

// ---------------------------------------------------------------------------------------------
// wsgi.file_wrapper
// ---------------------------------------------------------------------------------------------

/// Processes of the server holding an open descriptor on `target`, as "pid:cmdline": (Apache
/// parent and children, daemon group managers and processes).
fn holders(a: &Apache, target: &Path) -> (Vec<String>, Vec<String>) {
    let mut apache = Vec::new();
    let mut daemon = Vec::new();
    for p in server_processes(a) {
        let Ok(rd) = fs::read_dir(format!("/proc/{}/fd", p.pid)) else { continue };
        let holds = rd.flatten().any(|e| fs::read_link(e.path()).is_ok_and(|l| l == target));
        if holds {
            let who = format!("{}:{}", p.pid, p.cmdline);
            if p.is_daemon() { daemon.push(who) } else { apache.push(who) }
        }
    }
    (apache, daemon)
}

// ---------------------------------------------------------------------------------------------
// Per-request directives and script loading
// ---------------------------------------------------------------------------------------------

const METHOD_APP: &str = r#"
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('X-Method', environ['REQUEST_METHOD'])])
    return [b'method body']
"#;

const IMPORT_ERROR_APP: &str = "import os\nraise RuntimeError('import-boom')\n";
const NO_APP: &str = "def something_else(environ, start_response):\n    pass\n";

/// Follows `CALLABLE_AND_RELOAD_CONF`.
const HEAD_AND_SCRIPT_ERRORS_CONF: &str = "\
WSGIScriptAlias /headget {dir}/scripts/method.wsgi
WSGIScriptAlias /headoff {dir}/scripts/method.wsgi
<Location /headget>
    WSGIMapHEADToGET On
</Location>
<Location /headoff>
    WSGIMapHEADToGET Off
</Location>
WSGIScriptAlias /missing {dir}/scripts/nope.wsgi
WSGIScriptAlias /importerr {dir}/scripts/importerr.wsgi
WSGIScriptAlias /noapp {dir}/scripts/noapp.wsgi
";

/// `<version>|<script_reloading>` and the pid of a `reload_app` answer.
fn split_reload(r: &Response) -> (String, String) {
    let t = r.text();
    let (v, pid) = t.rsplit_once('|').unwrap_or((&t, ""));
    (v.to_string(), pid.to_string())
}

// ---------------------------------------------------------------------------------------------
// threading.local across requests
// ---------------------------------------------------------------------------------------------

const TLS_APP: &str = r#"
import threading
local = threading.local()

def application(environ, start_response):
    local.n = getattr(local, 'n', 0) + 1
    b = ('%d %d %r' % (local.n, threading.get_ident(), environ['wsgi.multithread'])).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(b)))])
    return [b]
"#;

// ---------------------------------------------------------------------------------------------
// The suite, in both modes
// ---------------------------------------------------------------------------------------------

mode_suite! {

#[test]
fn environ_keys_and_values() {
    for mpm in MODE.mpms() {
        let conf = match MODE {
            Mode::Embedded => ENV_CONF.to_string(),
            Mode::Daemon => format!("{ENV_DAEMON_GROUPS_CONF}{ENV_CONF}"),
        };
        let a = server(MODE, mpm, &plain_and_validated("env", ENV_APP), &conf);

        let mut request_ids = HashSet::new();
        for w in &env_wants(MODE, mpm) {
            // Wrapped in wsgiref.validate (/env_v): same values, no assertion or warning.
            let r = a.request(&env_request(&format!("{}/caf%C3%A9?a=1&b=%20", w.mount), a.port));
            assert_eq!(r.status, 200, "[{mpm}] {}: {r}\n{}", w.mount, a.error_log());
            let env = parse_env(&r);
            check_env(&a, &env, w);
            let rid = env_get(&env, "mod_wsgi.request_id").to_string();
            assert!(request_ids.insert(rid.clone()), "[{mpm}] {}: request ids must differ: {rid}", w.mount);
            // Served where the mode says: by an Apache child, or by a daemon process of the
            // mount's group (never by the Apache parent).
            let pid = env_get(&env, "@pid").to_string();
            let (pids, which) = match MODE {
                Mode::Embedded => (apache_child_pids(&a), "the Apache children".to_string()),
                Mode::Daemon => (daemon_pids(&a, w.group), format!("group {}'s daemon processes", w.group)),
            };
            assert!(pids.contains(&pid), "[{mpm}] {}: served by pid {pid}, not one of {which} {pids:?}", w.mount);
        }

        // Mounted at '/': SCRIPT_NAME is '' and PATH_INFO the whole path.
        let r = get(&a, "/");
        let env = parse_env(&r);
        assert_eq!(env_get(&env, "SCRIPT_NAME"), "''", "[{mpm}] {r}");
        assert_eq!(env_get(&env, "PATH_INFO"), "'/'", "[{mpm}] {r}");
        // Host: localhost (no port): SERVER_PORT is Apache's default port, left out of the group name.
        assert_eq!(env_get(&env, "SERVER_PORT"), "'80'", "[{mpm}] {r}");
        assert_eq!(env_get(&env, "mod_wsgi.application_group"), "'localhost|'", "[{mpm}] {r}");
        let r = get(&a, "/some/where");
        let env = parse_env(&r);
        assert_eq!(env_get(&env, "SCRIPT_NAME"), "''", "[{mpm}] {r}");
        assert_eq!(env_get(&env, "PATH_INFO"), "'/some/where'", "[{mpm}] {r}");

        // A body: CONTENT_LENGTH / CONTENT_TYPE, never as HTTP_*.
        let r = a.post("/env/p", "text/plain", b"abc");
        let env = parse_env(&r);
        assert_eq!(env_get(&env, "REQUEST_METHOD"), "'POST'", "[{mpm}] {r}");
        assert_eq!(env_get(&env, "CONTENT_LENGTH"), "'3'", "[{mpm}] {r}");
        assert_eq!(env_get(&env, "CONTENT_TYPE"), "'text/plain'", "[{mpm}] {r}");
        assert!(!env.contains_key("HTTP_CONTENT_LENGTH") && !env.contains_key("HTTP_CONTENT_TYPE"), "[{mpm}] {r}");

        // WSGIPassAuthorization On (directive) and pass-authorization=On (mount option).
        for mount in ["/auth_loc", "/auth_opt"] {
            let r = a.request(&env_request(&format!("{mount}/caf%C3%A9?a=1&b=%20"), a.port));
            let env = parse_env(&r);
            assert_eq!(
                env_get(&env, "HTTP_AUTHORIZATION"),
                "'Basic dXNlcjpwYXNz'",
                "[{mpm}] {mount}: {r}"
            );
            assert!(!env.contains_key("HTTP_PROXY"), "[{mpm}] {mount}");
        }

        let log = a.error_log();
        assert!(!log.contains("WSGIWarning") && !log.contains("AssertionError"), "[{mpm}] {log}");
        MODE.stop(a);
    }
}

/// `MergeSlashes Off` lets duplicate slashes reach the module; `/env/tls` says HTTPS as a TLS
/// terminator in front of Apache would.
const SLASHES_CONF: &str = "\
MergeSlashes Off
WSGIScriptAlias //dup {dir}/scripts/env.wsgi
WSGIScriptAlias /env {dir}/scripts/env.wsgi
<Location /env/tls>
    SetEnv HTTPS on
</Location>
";

#[test]
fn duplicate_slashes_collapse_and_https_sets_the_scheme_only() {
    for mpm in MODE.mpms() {
        let a = server(MODE, mpm, &plain_and_validated("env", ENV_APP), SLASHES_CONF);
        let env_of = |path: &str| {
            let r = a.request(&http_request("GET", path, &[("Connection", "close")], b""));
            assert_eq!(r.status, 200, "[{mpm}] {path}: {r}");
            parse_env(&r)
        };
        // As mod_wsgi: runs of slashes collapse in SCRIPT_NAME and PATH_INFO, not in REQUEST_URI.
        for (path, script_name, path_info) in [
            ("/env/a//b", "'/env'", "'/a/b'"),
            ("/env//a///b////c", "'/env'", "'/a/b/c'"),
            ("/env/a//", "'/env'", "'/a/'"),
            ("/env//", "'/env'", "'/'"),
            ("//dup/x//y", "'/dup'", "'/x/y'"),
        ] {
            let env = env_of(path);
            assert_eq!(env_get(&env, "REQUEST_URI"), format!("'{path}'"), "[{mpm}] {path}: kept as sent");
            assert_eq!(env_get(&env, "SCRIPT_NAME"), script_name, "[{mpm}] {path}");
            assert_eq!(env_get(&env, "PATH_INFO"), path_info, "[{mpm}] {path}");
        }
        // HTTPS makes wsgi.url_scheme 'https' and is not itself passed on.
        let env = env_of("/env/tls");
        assert_eq!(env_get(&env, "wsgi.url_scheme"), "'https'", "[{mpm}]");
        assert!(!env.contains_key("HTTPS"), "[{mpm}] HTTPS must not be in environ: {env:?}");
        let env = env_of("/env/plain");
        assert_eq!(env_get(&env, "wsgi.url_scheme"), "'http'", "[{mpm}]");
        MODE.stop(a);
    }
}

/// `/env/trusted`: proxy headers believed from any peer; `/env/untrusted`: only from a proxy
/// that is not the test client; `/env/behind`: from 127.0.0.1 (the test client) as a proxy.
const PROXY_CONF: &str = "\
WSGIScriptAlias /env {dir}/scripts/env.wsgi
<Location /env/trusted>
    WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Host X-Forwarded-Proto X-Script-Name
</Location>
<Location /env/untrusted>
    WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Host X-Forwarded-Proto
    WSGITrustedProxies 10.99.99.99
</Location>
<Location /env/behind>
    WSGITrustedProxyHeaders X-Forwarded-For
    WSGITrustedProxies 127.0.0.1 10.0.0.0/8
</Location>
";

#[test]
fn trusted_proxy_headers_from_trusted_and_untrusted_peers() {
    for mpm in MODE.mpms() {
        let a = server(MODE, mpm, &plain_and_validated("env", ENV_APP), PROXY_CONF);
        let env_of = |path: &str, headers: &[(&str, &str)]| {
            let mut h = headers.to_vec();
            h.push(("Connection", "close"));
            let r = a.request(&http_request("GET", path, &h, b""));
            assert_eq!(r.status, 200, "[{mpm}] {path}: {r}");
            parse_env(&r)
        };
        let sent = [
            ("X-Forwarded-For", "203.0.113.5, 10.0.0.1"),
            ("X-Forwarded-Host", "www.example.com"),
            ("X-Forwarded-Proto", "https"),
            ("X-Script-Name", "/prefix"),
            ("X-Real-IP", "198.51.100.7"),
        ];
        // Any peer is a trusted proxy without WSGITrustedProxies.
        let env = env_of("/env/trusted", &sent);
        assert_eq!(env_get(&env, "REMOTE_ADDR"), "'203.0.113.5'", "[{mpm}] {env:?}");
        assert_eq!(env_get(&env, "HTTP_HOST"), "'www.example.com'", "[{mpm}]");
        assert_eq!(env_get(&env, "wsgi.url_scheme"), "'https'", "[{mpm}]");
        assert_eq!(env_get(&env, "SCRIPT_NAME"), "'/prefix'", "[{mpm}]");
        assert!(!env.contains_key("HTTP_X_REAL_IP"), "[{mpm}] a spoofed header of a trusted category is dropped: {env:?}");
        // From a peer that is not a trusted proxy, the trusted headers are dropped, nothing is
        // rewritten; headers of other categories stay.
        let env = env_of("/env/untrusted", &sent);
        assert_eq!(env_get(&env, "REMOTE_ADDR"), "'127.0.0.1'", "[{mpm}]");
        assert_eq!(env_get(&env, "HTTP_HOST"), "'localhost'", "[{mpm}]");
        assert_eq!(env_get(&env, "wsgi.url_scheme"), "'http'", "[{mpm}]");
        for k in ["HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO"] {
            assert!(!env.contains_key(k), "[{mpm}] {k} must not reach the application: {env:?}");
        }
        assert_eq!(env_get(&env, "HTTP_X_SCRIPT_NAME"), "'/prefix'", "[{mpm}] not a listed category");
        // Behind trusted proxies: the chain is walked from the right past the trusted ones.
        let env = env_of("/env/behind", &[("X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.1.2.3")]);
        assert_eq!(env_get(&env, "REMOTE_ADDR"), "'203.0.113.9'", "[{mpm}] {env:?}");
        MODE.stop(a);
    }
}

// ---------------------------------------------------------------------------------------------
// wsgi.input
// ---------------------------------------------------------------------------------------------

#[test]
fn a_client_that_stops_sending_the_body_gets_408() {
    for mpm in MODE.mpms() {
        let a = server(MODE, mpm, &plain_and_validated("input", INPUT_APP), &format!("Timeout 2\n{INPUT_CONF}"));
        let mark = log_mark(&a);
        let mut c = a.connect();
        // Promise 100 bytes, send 10, then go silent: the read times out after Apache's Timeout.
        c.write(b"POST /input?all HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n0123456789");
        let t = std::time::Instant::now();
        let r = c.read_response(false).unwrap_or_else(|e| panic!("[{mpm}] no response: {e}\n{}", a.error_log()));
        assert_eq!(r.status, 408, "[{mpm}] {r}\n{}", a.error_log());
        assert!(t.elapsed() < Duration::from_secs(8), "[{mpm}] took {:?}", t.elapsed());
        let lines = wait_new_lines(&a, mark, "WR0130", 1);
        assert_eq!(lines.len(), 1, "[{mpm}] one line says what happened:\n{}", a.error_log());
        assert!(lines[0].contains("stopped sending the request body"), "{}", lines[0]);
        MODE.stop(a);
    }
}

#[test]
fn wsgi_input_reading_streaming_chunked_and_limits() {
    // A 1 MiB body read in 64 KiB pieces, and its digest.
    let big: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let py = std::process::Command::new(PYTHON)
        .args(["-c", "import hashlib,sys; print(hashlib.sha256(bytes(i % 251 for i in range(1048576))).hexdigest())"])
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&py.stdout).trim().to_string();
    assert_eq!(sha.len(), 64, "{py:?}");

    for mpm in MODE.mpms() {
        let a = input_server(MODE, mpm);

        // Every read method on a known multi-line body, plain and under the validator.
        for mount in ["/input", "/input_v"] {
            for (op, want) in INPUT_OPS {
                let r = a.post(&format!("{mount}?{op}"), "text/plain", BODY);
                assert_eq!(r.status, 200, "[{mpm}] {mount}?{op}: {r}\n{}", a.error_log());
                assert_eq!(r.text(), format!("{want}|CL='39'"), "[{mpm}] {mount}?{op}");
            }
        }

        let r = a.post("/input?big", "application/octet-stream", &big);
        assert_eq!(r.status, 200, "[{mpm}] {r}");
        assert_eq!(r.text(), format!("(1048576, '{sha}')|CL='1048576'"), "[{mpm}] {r}");

        // Streams (to the daemon too): the application sees the first line before the client
        // sent the rest.
        let mut c = a.connect();
        c.write(&http_request("POST", "/input?stream", &[("Content-Length", "20"), ("Connection", "close")], b""));
        c.write(b"first\n");
        let rec = a.dir.join("tmp/stream.log");
        let seen = wait_file(&rec, Duration::from_secs(10), |s| s.contains("first"));
        assert_eq!(seen, "first b'first\\n'\n", "[{mpm}] app did not get the first line while the body was incomplete");
        c.write(b"rest-of-body!!");
        let r = c.read_response(false).unwrap();
        assert_eq!(r.text(), "[b'first\\n', b'rest-of-body!!']|CL='20'", "[{mpm}] {r}");
        drop(c);

        // Chunked request body: accepted with WSGIChunkedRequest On, no CONTENT_LENGTH.
        for (op, want) in [("all", INPUT_OPS[7].1), ("lines", INPUT_OPS[3].1)] {
            let mut req = http_request(
                "POST",
                &format!("/input_c?{op}"),
                &[("Transfer-Encoding", "chunked"), ("Connection", "close")],
                b"",
            );
            req.extend(chunked(BODY, 7));
            let r = a.request(&req);
            assert_eq!(r.status, 200, "[{mpm}] {r}\n{}", a.error_log());
            assert_eq!(r.text(), format!("{want}|CL=None|TERM=True"), "[{mpm}] chunked {op}");
        }
        // ... and refused with 411 without it.
        let mut req = http_request(
            "POST",
            "/input?all",
            &[("Transfer-Encoding", "chunked"), ("Connection", "close")],
            b"",
        );
        req.extend(chunked(BODY, 7));
        let r = a.request(&req);
        assert_eq!(r.status, 411, "[{mpm}] {r}");

        // LimitRequestBody 10 on a 39-byte body: 413.
        let r = a.post("/input_l?all", "text/plain", BODY);
        assert_eq!(r.status, 413, "[{mpm}] {r}\n{}", a.error_log());

        // A client that goes away mid-body: OSError in the application.
        let mut c = a.connect();
        c.write(&http_request("POST", "/input?gone", &[("Content-Length", "100000")], b""));
        c.write(&[b'z'; 1000]);
        thread::sleep(Duration::from_millis(300));
        drop(c);
        let rec = a.dir.join("tmp/gone.log");
        let seen = wait_file(&rec, Duration::from_secs(15), |s| !s.is_empty());
        assert!(
            seen.starts_with("raised ") && seen.contains("oserror=True") && seen.contains("after 1000"),
            "[{mpm}] expected OSError when the client went away mid-body, app recorded {seen:?}\n{}",
            a.error_log()
        );
        MODE.stop(a);
    }
}

#[test]
fn expect_100_continue_sent_on_first_read() {
    for mpm in MODE.mpms() {
        let a = input_server(MODE, mpm);
        for mount in ["/input", "/input_v"] {
            // The interim 100 comes when the app reads, before the client sent the body.
            let mut c = a.connect();
            c.write(&http_request(
                "POST",
                &format!("{mount}?all"),
                &[("Expect", "100-continue"), ("Content-Length", "39"), ("Connection", "close")],
                b"",
            ));
            let mut got = Vec::new();
            let ok = read_raw_until(&c, &mut got, b"\r\n\r\n", Duration::from_secs(10));
            let head = String::from_utf8_lossy(&got).into_owned();
            assert!(ok && head.starts_with("HTTP/1.1 100 "), "[{mpm}] {mount}: no interim 100 before the body was sent: {head:?}");
            c.write(BODY);
            let r = c.read_response(false).unwrap();
            assert_eq!(r.status, 200, "[{mpm}] {r}");
            assert_eq!(r.text(), format!("{}|CL='39'", INPUT_OPS[7].1), "[{mpm}] {mount}");
            drop(c);

            // An app that never reads the body answers at once: no 100, no wait for the body
            // (the client is entitled to wait for the final response instead of sending it).
            let mut c = a.connect();
            let _ = c.stream().set_read_timeout(Some(Duration::from_secs(5)));
            c.write(&http_request(
                "POST",
                &format!("{mount}?none"),
                &[("Expect", "100-continue"), ("Content-Length", "39"), ("Connection", "close")],
                b"",
            ));
            let t = Instant::now();
            let r = match c.read_response(false) {
                Ok(r) => r,
                Err(e) => a.fail(&format!(
                    "[{mpm}] {mount}: no response within {:?} to an Expect: 100-continue request whose \
                     body the app never reads (server waiting for the body?): {e}",
                    t.elapsed()
                )),
            };
            assert_eq!(r.status, 200, "[{mpm}] {r}");
            assert!(r.interim.is_empty(), "[{mpm}] {mount}: unexpected interim {:?}", r.interim);
            assert_eq!(r.text(), "'not read'|CL='39'", "[{mpm}] {mount}");
        }
        MODE.stop(a);
    }
}

// ---------------------------------------------------------------------------------------------
// wsgi.errors, sys.stdout, sys.stderr
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_and_stdout_go_to_error_log_with_client() {
    for mpm in MODE.mpms() {
        let a = server(MODE, mpm, &plain_and_validated("errs", ERRORS_APP), &plain_and_validated_mounts("errs"));
        for mount in ["/errs", "/errs_v"] {
            let tag = format!("{}{}", mpm.name(), mount.replace('/', "_"));
            // One more request after the partial ones: their text must not be glued to it.
            for q in [format!("lines-{tag}"), format!("perr-{tag}"), format!("pout-{tag}"), format!("close-{tag}"), format!("detach-{tag}"), format!("lines-after{tag}")] {
                let r = get(&a, &format!("{mount}?{q}"));
                assert_eq!(r.status, 200, "[{mpm}] {mount}?{q}: {r}\n{}", a.error_log());
            }
            let mut msgs = vec![
                format!("stdout-line-{tag}"),
                format!("stderr-line-{tag}"),
                format!("errors-line-{tag}"),
                format!("wl1-{tag}"),
                format!("wl2-{tag}"),
                format!("multi-a-{tag}"),
                format!("multi-b-{tag}"),
                format!("split-{tag}"),
                format!("partial-errors-{tag}"),
                format!("partial-stdout-{tag}"),
                format!("split-after{tag}"),
                format!("before-close-{tag}"),
            ];
            if mount == "/errs" {
                msgs.extend([
                format!("buf-bytes-{tag}"),
                format!("buf-bytearray-{tag}"),
                format!("buf-memoryview-{tag}"),
                format!("bufline-one-{tag}"),
                format!("bufline-two-{tag}"),
                format!("stderr-buf-{tag}"),
                // UTF-8 encoded; Apache's error log escapes bytes above 0x7f.
                format!("utf8-caf\\xc3\\xa9-{tag}"),
                ]);
            }
            // Partial lines are flushed when their request ends, which may be just after the
            // client got the response: wait for each.
            for msg in &msgs {
                assert!(a.wait_log(msg, Duration::from_secs(10)), "[{mpm}] {msg:?} never logged:\n{}", a.error_log());
            }
            let log = a.error_log();
            for msg in &msgs {
                let lines: Vec<&str> = log.lines().filter(|l| l.ends_with(msg.as_str())).collect();
                assert_eq!(lines.len(), 1, "[{mpm}] expected one log line ending with {msg:?}:\n{log}");
                assert!(lines[0].contains("[client 127.0.0.1:"), "[{mpm}] no client address on {:?}", lines[0]);
            }
        }
        // As mod_wsgi: text streams over the log, and sys.stdin restricted (WSGIRestrictStdin).
        let r = get(&a, "/errs?types-x");
        assert_eq!(
            r.text().lines().collect::<Vec<_>>(),
            [
                "_io.TextIOWrapper",
                "mod_wsgi.Log",
                "_io.TextIOWrapper",
                "_io.TextIOWrapper",
                "mod_wsgi.Restricted",
                "OSError: sys.stdin access restricted by mod_wsgi",
            ],
            "[{mpm}] {r}"
        );
        MODE.stop(a);
    }
}

#[test]
fn restrict_stdin_off_and_restrict_stdout_on() {
    let mpm = MODE.mpms()[0];
    let mut conf = plain_and_validated_mounts("errs");
    conf.push_str("WSGIRestrictStdin Off\nWSGIRestrictStdout On\n");
    let a = server(MODE, mpm, &plain_and_validated("errs", ERRORS_APP), &conf);
    let r = get(&a, "/errs?types-x");
    let lines: Vec<String> = r.text().lines().map(String::from).collect();
    assert_eq!(lines.len(), 6, "[{mpm}] {r}");
    assert_eq!(lines[2], "mod_wsgi.Restricted", "[{mpm}] sys.stdout is restricted: {r}");
    assert_eq!(lines[3], "_io.TextIOWrapper", "[{mpm}] sys.stderr never is: {r}");
    assert_ne!(lines[4], "mod_wsgi.Restricted", "[{mpm}] sys.stdin is left alone: {r}");
    assert_eq!(lines[5], "usable", "[{mpm}] {r}");
    MODE.stop(a);
}

// ---------------------------------------------------------------------------------------------
// start_response
// ---------------------------------------------------------------------------------------------

#[test]
fn start_response_validation_exc_info_and_write() {
    for mpm in MODE.mpms() {
        let a = server(MODE, mpm, &plain_and_validated("sr", SR_APP), &plain_and_validated_mounts("sr"));

        // Bad values: 500 and exactly one WR0106 line naming the value, no traceback.
        for (case, names) in [
            ("bad_status", &["abc"][..]),
            ("bytes_status", &["200 OK", "bytes"][..]),
            ("nl_value", &["X-Bad"][..]),
            ("space_name", &["X Bad"][..]),
            ("tuple_headers", &["tuple"][..]),
        ] {
            let mark = log_mark(&a);
            let r = get(&a, &format!("/sr?{case}"));
            assert_eq!(r.status, 500, "[{mpm}] {case}: {r}");
            let lines = wait_new_lines(&a, mark, "WR0106", 1);
            assert_eq!(lines.len(), 1, "[{mpm}] {case}: want exactly one WR0106 line, got {lines:#?}\n{}", a.error_log());
            for n in names {
                assert!(lines[0].contains(n), "[{mpm}] {case}: log line does not name {n:?}: {}", lines[0]);
            }
            assert!(lines[0].contains("[client 127.0.0.1:"), "{}", lines[0]);
            let tb = new_lines_with(&a, mark, "Traceback");
            assert!(tb.is_empty(), "[{mpm}] {case}: a bad value is one clear line, not a traceback: {tb:#?}");
        }

        // Refused values raise mod_wsgi's exception types with mod_wsgi's messages.
        let r = get(&a, "/sr?refusals");
        assert_eq!(r.status, 200, "[{mpm}] {r}");
        let want = [
            "ValueError:status code must be a 3 digit integer: b'OK'",
            "ValueError:status code must be a 3 digit integer: b'20X OK'",
            "ValueError:status code must be a 3 digit integer: b'2000 OK'",
            "ValueError:no space following status code: b'200OK'",
            "ValueError:control character in status reason phrase: b'200 OK\\r\\nX-Injected: 1'",
            "ValueError:header name is empty",
            "ValueError:space character in header name: b'X Foo'",
            "ValueError:control character in header name: b'X\\tFoo'",
            "ValueError:carriage return/line feed character in header value: b'one\\r\\ntwo'",
            "TypeError:must be str, not int",
            "UnicodeEncodeError:'latin-1' codec can't encode characters in position 0-1: ordinal not in range(256)",
            "TypeError:each header must be a 2-tuple, not str",
            "ValueError:each header must be a 2-tuple, got length 3",
            "TypeError:start_response() argument 2 must be list, not str",
            "TypeError:start_response() argument 2 must be list, not tuple",
            "TypeError:start_response() argument 2 must be list, not dict",
            "RuntimeError:start_response() argument 'exc_info' must be a 3-tuple or None",
        ];
        assert_eq!(r.text().lines().collect::<Vec<_>>(), want, "[{mpm}] {r}");
        // Once output went out, a second call without exc_info raises RuntimeError.
        let r = get(&a, "/sr?second_after_output");
        assert_eq!(r.text(), "sent;RuntimeError:start_response() called more than once without exc_info", "[{mpm}] {r}");

        for mount in ["/sr", "/sr_v"] {
            // As mod_wsgi: before any output, a second call without exc_info replaces the first.
            let r = get(&a, &format!("{mount}?second"));
            assert_eq!(r.status, 201, "[{mpm}] {mount}: {r}");
            assert_eq!(r.header("X-Call"), Some("second"), "[{mpm}] {r}");
            assert_eq!(r.text(), "second call accepted", "[{mpm}] {r}");

            // exc_info before anything was sent replaces status and headers.
            for (case, body) in [("replace", "replaced"), ("replace_late", "replaced-late")] {
                let r = get(&a, &format!("{mount}?{case}"));
                assert_eq!(r.status, 202, "[{mpm}] {mount}?{case}: {r}\n{}", a.error_log());
                assert_eq!(r.header("X-Second"), Some("1"), "[{mpm}] {r}");
                assert_eq!(r.header("X-First"), None, "[{mpm}] {r}");
                assert_eq!(r.text(), body, "[{mpm}] {r}");
            }

            // exc_info after the head went out re-raises: the response is cut.
            let mark = log_mark(&a);
            let r = get(&a, &format!("{mount}?reraise"));
            assert_eq!(r.status, 200, "[{mpm}] {r}");
            assert!(r.chunked && !r.complete, "[{mpm}] {mount}: response must be cut: {r}");
            assert_eq!(r.text(), "first;", "[{mpm}] {r}");
            let lines = wait_new_lines(&a, mark, "after-sent", 1);
            assert!(!lines.is_empty(), "[{mpm}] re-raised exception not logged:\n{}", a.error_log());

            // write(): bytes go out in order, str is refused with TypeError.
            let r = get(&a, &format!("{mount}?write"));
            assert_eq!(r.status, 200, "[{mpm}] {r}");
            let want = if mount == "/sr" { "hello world caught:TypeError" } else { "hello world validated" };
            assert_eq!(r.text(), want, "[{mpm}] {mount}");
            assert!(r.complete, "[{mpm}] {r}");
        }
        // Header values are latin-1 str: sent as latin-1 bytes (0xE9), not UTF-8.
        let mut c = a.connect();
        c.write(&http_request("GET", "/sr?latin1", &[("Connection", "close")], b""));
        let mut buf = Vec::new();
        assert!(read_raw_until(&c, &mut buf, b"\r\n\r\n", Duration::from_secs(10)), "[{mpm}] {buf:?}");
        assert!(
            find(&buf, b"X-Latin: caf\xe9\r\n").is_some(),
            "[{mpm}] header value 'caf\\xe9' not sent as latin-1: {:?}",
            String::from_utf8_lossy(&buf)
        );
        drop(c);

        let log = a.error_log();
        assert!(!log.contains("WSGIWarning"), "[{mpm}] {log}");
        MODE.stop(a);
    }
}

// ---------------------------------------------------------------------------------------------
// Output: Content-Length, framing, streaming, HEAD/204/304, bad items, exceptions
// ---------------------------------------------------------------------------------------------

#[test]
fn output_framing_streaming_keepalive_and_no_body_cases() {
    for mpm in MODE.mpms() {
        let a = out_server(MODE, mpm);
        let req = |m: &str, path: &str| http_request(m, path, &[], b"");

        for mount in ["/out", "/out_v"] {
            // All on one keep-alive connection: any stray body byte would break the next response.
            let mut c = a.connect();
            let mut send = |m: &str, q: &str| -> Response {
                let path = format!("{mount}?{q}");
                match c.try_send(&req(m, &path)) {
                    Ok(r) => r,
                    Err(e) => a.fail(&format!("[{mpm}] {m} {path}: {e} (stray bytes from the previous response?)")),
                }
            };
            let r = send("GET", "cl_exact");
            assert_eq!((r.status, r.text().as_str(), r.header("Content-Length")), (200, "hello", Some("5")), "[{mpm}] {r}");
            assert!(r.complete && !r.chunked, "[{mpm}] {r}");

            // No Content-Length on HTTP/1.1: chunked, and the connection is kept (twice on it).
            for _ in 0..2 {
                let r = send("GET", "stream");
                assert_eq!(r.status, 200, "[{mpm}] {r}");
                assert!(r.chunked && r.complete, "[{mpm}] {mount}: want a complete chunked response: {r}");
                assert_eq!(r.text(), "a;b;c;");
                assert_eq!(r.header("Content-Length"), None);
            }

            // Multi-valued Set-Cookie: two separate header lines, in order, not merged.
            let r = send("GET", "cookies");
            assert_eq!(r.status, 200, "[{mpm}] {r}");
            assert_eq!(r.headers_all("Set-Cookie"), ["a=1; Path=/", "b=2; HttpOnly"], "[{mpm}] {mount}: {r}");
            // Any other repeated field is folded into one, in order, in both modes.
            assert_eq!(r.headers_all("X-Other"), ["x, y"], "[{mpm}] {mount}: {r}");
            assert_eq!(r.text(), "ok");

            // HEAD: no body, whatever the app returns.
            let r = send("HEAD", "stream");
            assert_eq!(r.status, 200, "[{mpm}] {r}");
            let r = send("HEAD", "cl_exact");
            assert_eq!(r.status, 200, "[{mpm}] {r}");
            assert_eq!(r.header("Content-Length"), Some("5"), "[{mpm}] {r}");
            // 204 and 304: no body even though the app returned one.
            let r = send("GET", "204");
            assert_eq!(r.status, 204, "[{mpm}] {r}");
            let r = send("GET", "304");
            assert_eq!(r.status, 304, "[{mpm}] {r}");
            let r = send("GET", "cl_exact");
            assert_eq!(r.text(), "hello", "[{mpm}] {mount}: stray bytes after HEAD/204/304: {r}");

            // Content-Length honoured: excess dropped, the connection still usable.
            if mount == "/out" {
                let r = send("GET", "cl_excess");
                assert_eq!((r.status, r.text().as_str()), (200, "hello"), "[{mpm}] {r}");
                assert!(r.complete, "[{mpm}] {r}");
                let r = send("GET", "stream");
                assert_eq!(r.text(), "a;b;c;", "[{mpm}] excess bytes leaked into the next response: {r}");
            }
            drop(c);
        }

        // Content-Length shortfall: the client sees a truncated response; WR0108 logged.
        let mark = log_mark(&a);
        let r = get(&a, "/out?cl_short");
        assert_eq!(r.status, 200, "[{mpm}] {r}");
        assert_eq!(r.header("Content-Length"), Some("100"), "[{mpm}] {r}");
        assert_eq!(r.text(), "short", "[{mpm}] {r}");
        assert!(!r.complete, "[{mpm}] {r}");
        assert_eq!(wait_new_lines(&a, mark, "WR0108", 1).len(), 1, "[{mpm}] shortfall not logged:\n{}", a.error_log());

        // Generator blocks reach the client as yielded: the first block arrives while the
        // application sleeps 1 s before the next.
        for mount in ["/out", "/out_v"] {
            let mut c = a.connect();
            c.write(&http_request("GET", &format!("{mount}?slow"), &[("Connection", "close")], b""));
            let mut buf = Vec::new();
            assert!(read_raw_until(&c, &mut buf, b"first-block", Duration::from_secs(10)), "[{mpm}] {buf:?}");
            let t1 = Instant::now();
            assert!(find(&buf, b"second-block").is_none(), "[{mpm}] {mount}: blocks were buffered");
            assert!(read_raw_until(&c, &mut buf, b"0\r\n\r\n", Duration::from_secs(10)), "[{mpm}] {buf:?}");
            let waited = t1.elapsed();
            assert!(
                waited >= Duration::from_millis(700),
                "[{mpm}] {mount}: first block arrived only {waited:?} before the end (buffered?)"
            );
            assert!(find(&buf, b"second-block").is_some());
        }
        MODE.stop(a);
    }
}

#[test]
fn bad_items_and_exceptions_before_and_after_headers() {
    for mpm in MODE.mpms() {
        let a = out_server(MODE, mpm);

        // A non-bytes item: 500 before the head, a cut response after; WR0107 either way.
        let mark = log_mark(&a);
        let r = get(&a, "/out?str_before");
        assert_eq!(r.status, 500, "[{mpm}] {r}");
        let lines = wait_new_lines(&a, mark, "WR0107", 1);
        assert_eq!(lines.len(), 1, "[{mpm}] non-bytes item before headers: want one WR0107 line:\n{}", a.error_log());
        assert!(lines[0].contains("str"), "{}", lines[0]);
        let mark = log_mark(&a);
        let r = get(&a, "/out?str_after");
        assert_eq!(r.status, 200, "[{mpm}] {r}");
        assert!(r.chunked && !r.complete, "[{mpm}] chunked response must be left unterminated: {r}");
        assert_eq!(r.text(), "ok;", "[{mpm}] {r}");
        let lines = wait_new_lines(&a, mark, "WR0107", 1);
        assert_eq!(lines.len(), 1, "[{mpm}] non-bytes item after headers: want one WR0107 line:\n{}", a.error_log());

        // Exception before the head: 500 and the traceback, one line each, every line WR0104.
        for (case, msg) in [
            ("exc_before", "ValueError: boom-before-headers"),
            ("exc_before_gen", "ValueError: boom-in-generator-before-body"),
        ] {
            let mark = log_mark(&a);
            let r = get(&a, &format!("/out?{case}"));
            assert_eq!(r.status, 500, "[{mpm}] {case}: {r}");
            let last = wait_new_lines(&a, mark, msg, 1);
            assert_eq!(last.len(), 1, "[{mpm}] {case}: {msg} not logged once:\n{}", a.error_log());
            let tb = new_lines_with(&a, mark, "Traceback (most recent call last):");
            let files = new_lines_with(&a, mark, &format!("File \"{}/scripts/out.wsgi\"", a.dir.display()));
            assert_eq!(tb.len(), 1, "[{mpm}] {case}: {tb:#?}\n{}", a.error_log());
            assert!(!files.is_empty(), "[{mpm}] {case}: no traceback frame lines:\n{}", a.error_log());
            for l in tb.iter().chain(&files).chain(&last) {
                assert!(l.contains("WR0104"), "[{mpm}] {case}: traceback line without WR0104: {l}");
                assert!(l.contains("[client 127.0.0.1:"), "[{mpm}] {case}: {l}");
            }
        }

        // The headline names the exception class, as mod_wsgi 6 does; SystemExit is said apart.
        let log = a.error_log();
        assert!(log.contains("WR0104: ValueError exception raised processing WSGI script"), "[{mpm}] {log}");
        let mark = log_mark(&a);
        let r = get(&a, "/out?system_exit");
        assert_eq!(r.status, 500, "[{mpm}] {r}");
        let lines = wait_new_lines(&a, mark, "SystemExit exception raised by WSGI script", 1);
        assert_eq!(lines.len(), 1, "[{mpm}] {}", a.error_log());
        assert_eq!(wait_new_lines(&a, mark, "SystemExit: exit-is-not-for-servers", 1).len(), 1, "[{mpm}] {}", a.error_log());
        // mod_wsgi.RequestTimeout: 504, one info line, no traceback.
        let mark = log_mark(&a);
        let r = get(&a, "/out?request_timeout");
        assert_eq!(r.status, 504, "[{mpm}] {r}");
        let lines = wait_new_lines(&a, mark, "Request interrupted by RequestTimeout; thread recovered.", 1);
        assert_eq!(lines.len(), 1, "[{mpm}] {}", a.error_log());
        assert!(new_lines_with(&a, mark, "Traceback").is_empty(), "[{mpm}] {}", a.error_log());

        // Exception after the head: cut short (chunked, unterminated), logged.
        let mark = log_mark(&a);
        let r = get(&a, "/out?exc_after");
        assert_eq!(r.status, 200, "[{mpm}] {r}");
        assert!(r.chunked && !r.complete, "[{mpm}] response must be cut: {r}");
        assert_eq!(r.text(), "partial;");
        assert!(!wait_new_lines(&a, mark, "boom-after-headers", 1).is_empty(), "[{mpm}] {}", a.error_log());
        assert!(!new_lines_with(&a, mark, "WR0105").is_empty(), "[{mpm}] {}", a.error_log());

        // The application still serves normally afterwards.
        let r = get(&a, "/out?cl_exact");
        assert_eq!((r.status, r.text().as_str()), (200, "hello"), "[{mpm}] {r}");
        MODE.stop(a);
    }
}

// ---------------------------------------------------------------------------------------------
// close()
// ---------------------------------------------------------------------------------------------

#[test]
fn close_called_exactly_once_incl_client_disconnect() {
    for mpm in MODE.mpms() {
        let a = server(MODE, mpm, &plain_and_validated("close", CLOSE_APP), &plain_and_validated_mounts("close"));
        let rec = a.dir.join("tmp/close.log");
        let mut expect: Vec<(String, Option<&str>)> = Vec::new();
        for mount in ["/close", "/close_v"] {
            let m = mount.trim_start_matches('/');
            let r = get(&a, &format!("{mount}?ok-{m}ok"));
            assert_eq!((r.status, r.text()), (200, "x".repeat(30)), "[{mpm}] {r}");
            expect.push((format!("{m}ok"), Some("3")));
            // Subclasses of list and tuple that define close() get it called too.
            for kind in ["list", "tuple"] {
                let r = get(&a, &format!("{mount}?{kind}-{m}{kind}"));
                assert_eq!((r.status, r.text()), (200, "x".repeat(30)), "[{mpm}] {r}");
                expect.push((format!("{m}{kind}"), Some("3")));
            }
            let r = get(&a, &format!("{mount}?excbefore-{m}eb"));
            assert_eq!(r.status, 500, "[{mpm}] {r}");
            expect.push((format!("{m}eb"), Some("0")));
            let r = get(&a, &format!("{mount}?excafter-{m}ea"));
            assert!(r.status == 200 && !r.complete, "[{mpm}] {r}");
            expect.push((format!("{m}ea"), Some("2")));

            // Client disconnects mid-response (400 blocks of 64 KiB, 10 ms apart).
            let mut c = a.connect();
            c.write(&http_request("GET", &format!("{mount}?slow-{m}gone"), &[("Connection", "close")], b""));
            let mut buf = Vec::new();
            assert!(read_raw_until(&c, &mut buf, &[b'x'; 1024], Duration::from_secs(10)), "[{mpm}] {buf:?}");
            drop(c);
            expect.push((format!("{m}gone"), None));
        }
        let ids: Vec<String> = expect.iter().map(|(id, _)| format!("close {id} ")).collect();
        let log = wait_file(&rec, Duration::from_secs(20), |s| ids.iter().all(|id| s.contains(id.as_str())));
        thread::sleep(Duration::from_millis(500));
        let log = fs::read_to_string(&rec).unwrap_or(log);
        for (id, count) in &expect {
            let lines: Vec<&str> = log.lines().filter(|l| l.starts_with(&format!("close {id} "))).collect();
            assert_eq!(lines.len(), 1, "[{mpm}] close() for {id} must be called exactly once:\n{log}\n{}", a.error_log());
            let n: usize = lines[0].rsplit(' ').next().unwrap().parse().unwrap();
            match count {
                Some(c) => assert_eq!(n.to_string(), *c, "[{mpm}] {id}: {}", lines[0]),
                // The app stopped being iterated soon after the client left (400 blocks in all).
                None => assert!(n < 400, "[{mpm}] {id}: iterated to the end after the client left: {}", lines[0]),
            }
        }
        MODE.stop(a);
    }
}

// ---------------------------------------------------------------------------------------------
// wsgi.file_wrapper
// ---------------------------------------------------------------------------------------------

#[test]
fn file_wrapper_real_file_and_file_like() {
    let data = blob();
    for mpm in MODE.mpms() {
        let b = builder(
            MODE,
            mpm,
            &plain_and_validated("fw", FW_APP),
            "WSGIScriptAlias /fw_v {dir}/scripts/fw_v.wsgi\n\
             WSGIScriptAlias /fw_sf {dir}/scripts/fw.wsgi\n\
             WSGIScriptAlias /fw {dir}/scripts/fw.wsgi\n\
             <Location /fw_sf>\n    WSGIEnableSendfile On\n</Location>\n",
        )
        .file("data/blob.bin", &data);
        // A 64 MiB sparse file: far more than the socket buffers hold, so the response stalls
        // while the client does not read, with the descriptor still open wherever it is read.
        let big = b.dir().join("data/big.bin");
        let f = fs::File::create(&big).unwrap();
        f.set_len(64 << 20).unwrap();
        drop(f);
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&big, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let a = b.start();
        let cases: &[(&str, std::ops::Range<usize>, Option<usize>)] = &[
            ("kind=file", 0..data.len(), None),
            ("kind=file&off=1000", 1000..data.len(), None),
            ("kind=file&off=1000&cl=5000", 1000..6000, Some(5000)),
            ("kind=file&off=0&cl=70000&blk=4096", 0..70000, Some(70000)),
            ("kind=bytesio", 0..data.len(), None),
            ("kind=bytesio&off=777&blk=1000", 777..data.len(), None),
            ("kind=bytesio&off=10&cl=3000", 10..3010, Some(3000)),
        ];
        for mount in ["/fw", "/fw_sf", "/fw_v"] {
            let mut c = a.connect();
            for (q, range, cl) in cases {
                let r = c.send(&http_request("GET", &format!("{mount}?{q}"), &[], b""));
                assert_eq!(r.status, 200, "[{mpm}] {mount}?{q}: {r}");
                assert!(r.complete, "[{mpm}] {mount}?{q}: {r}");
                assert_eq!(r.body.len(), range.len(), "[{mpm}] {mount}?{q}");
                assert!(r.body == data[range.clone()], "[{mpm}] {mount}?{q}: wrong bytes");
                if let Some(cl) = cl {
                    assert_eq!(r.header("Content-Length"), Some(cl.to_string().as_str()), "[{mpm}] {mount}?{q}");
                }
            }
            let r = c.send(&http_request("HEAD", &format!("{mount}?kind=file&off=5"), &[], b""));
            assert_eq!(r.status, 200, "[{mpm}] {r}");
            // Still in sync after the HEAD.
            let r = c.send(&http_request("GET", &format!("{mount}?kind=bytesio&cl=3"), &[], b""));
            assert_eq!(r.body, &data[..3], "[{mpm}] {mount}: stray bytes after HEAD: {r}");
        }

        // The real file is sent by Apache (as a file bucket; in daemon mode passed to the
        // Apache child as a descriptor): while the client does not read, an Apache process
        // (not a daemon process) holds the file open.
        let mut c = a.connect();
        c.write(&http_request("GET", "/fw?kind=big", &[("Connection", "close")], b""));
        let mut buf = Vec::new();
        assert!(read_raw_until(&c, &mut buf, b"\r\n\r\n", Duration::from_secs(10)), "[{mpm}] {buf:?}");
        let head = String::from_utf8_lossy(&buf[..find(&buf, b"\r\n\r\n").unwrap()]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200 "), "[{mpm}] {head}");
        let big_c = fs::canonicalize(&big).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut apache, mut daemon) = holders(&a, &big_c);
        while apache.is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
            (apache, daemon) = holders(&a, &big_c);
        }
        assert!(
            !apache.is_empty(),
            "[{mpm}] no Apache process holds {} open during the response (daemon holders: {daemon:?}): \
             the file was not passed as a descriptor\n{:#?}",
            big_c.display(),
            server_processes(&a)
        );
        // Now read it all: 64 MiB of zeros, complete (Content-Length or chunked framing).
        let mut rest = Vec::new();
        let mut s: &TcpStream = c.stream();
        let _ = s.read_to_end(&mut rest);
        buf.extend_from_slice(&rest);
        let body_at = head.len() + 4;
        if head.to_ascii_lowercase().contains("\r\ncontent-length:") {
            assert!(head.contains("Content-Length: 67108864"), "[{mpm}] {head}");
            assert_eq!(buf.len() - body_at, 64 << 20, "[{mpm}] big file: wrong length");
        } else {
            assert!(buf.len() > body_at + (64 << 20), "[{mpm}] big file cut short: {} bytes", buf.len());
            assert!(buf.ends_with(b"\r\n0\r\n\r\n"), "[{mpm}] big file response not terminated: {head}");
        }
        drop(c);

        let st = MODE.stop(a);
        assert!(!st.error_log.contains("WSGIWarning"), "{}", st.error_log);
    }
}

// ---------------------------------------------------------------------------------------------
// Per-request directives and script loading
// ---------------------------------------------------------------------------------------------

#[test]
fn directives_callable_reloading_head_and_script_errors() {
    for mpm in MODE.mpms() {
        let a = server(
            MODE,
            mpm,
            &[
                ("co.wsgi", CO_APP.to_string()),
                ("reload.wsgi", reload_app("v1")),
                ("noreload.wsgi", reload_app("v1")),
                ("method.wsgi", METHOD_APP.to_string()),
                ("importerr.wsgi", IMPORT_ERROR_APP.to_string()),
                ("noapp.wsgi", NO_APP.to_string()),
            ],
            &format!("{CALLABLE_AND_RELOAD_CONF}{HEAD_AND_SCRIPT_ERRORS_CONF}"),
        );
        let group = MODE.process_group();

        // WSGICallableObject and callable-object=.
        let r = get(&a, "/cloc");
        assert_eq!((r.status, r.text()), (200, format!("myapp:myapp:{group}")), "[{mpm}] {r}\n{}", a.error_log());
        let r = get(&a, "/copt");
        assert_eq!((r.status, r.text()), (200, format!("other:other:{group}")), "[{mpm}] {r}\n{}", a.error_log());

        // Script reloading. One keep-alive connection per case, so that in embedded mode the
        // same Apache child serves every request of it.
        //
        // WSGIScriptReloading Off: a changed script is not reloaded, the process not restarted
        // (checked first: in daemon mode reloading /reload below restarts the group's process,
        // which would load the new file anyway).
        let mut c = a.connect();
        let r = c.send(&http_request("GET", "/noreload", &[], b""));
        let (v, pid1) = split_reload(&r);
        assert_eq!(v, "v1|0", "[{mpm}] {r}\n{}", a.error_log());
        rewrite_script(&a.dir.join("scripts/noreload.wsgi"), &reload_app("v2"));
        for _ in 0..3 {
            let r = c.send(&http_request("GET", "/noreload", &[], b""));
            let (v, pid) = split_reload(&r);
            assert_eq!(v, "v1|0", "[{mpm}] WSGIScriptReloading Off: script was reloaded: {r}\n{}", a.error_log());
            assert_eq!(pid, pid1, "[{mpm}] WSGIScriptReloading Off: the process was restarted");
        }
        drop(c);

        // WSGIScriptReloading On: the same change is picked up.
        let mut c = a.connect();
        let r = c.send(&http_request("GET", "/reload", &[], b""));
        let (v, pid1) = split_reload(&r);
        assert_eq!(v, "v1|1", "[{mpm}] {r}");
        rewrite_script(&a.dir.join("scripts/reload.wsgi"), &reload_app("v2"));
        let mut r = c.send(&http_request("GET", "/reload", &[], b""));
        match MODE {
            // The process that notices reloads the script in place, before serving.
            Mode::Embedded => {
                assert_eq!(split_reload(&r), ("v2|1".to_string(), pid1), "[{mpm}] WSGIScriptReloading On: changed script not reloaded in place: {r}");
            }
            // The daemon process that notices is replaced (it may serve the request that
            // noticed with the old code first): the new code is served soon after.
            Mode::Daemon => {
                let deadline = Instant::now() + Duration::from_secs(10);
                while split_reload(&r).0 != "v2|1" && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(100));
                    r = c.send(&http_request("GET", "/reload", &[], b""));
                }
                assert_eq!(split_reload(&r).0, "v2|1", "[{mpm}] WSGIScriptReloading On: changed script not reloaded: {r}\n{}", a.error_log());
            }
        }
        drop(c);

        // WSGIMapHEADToGET.
        let r = a.request(&http_request("HEAD", "/headget", &[("Connection", "close")], b""));
        assert_eq!((r.status, r.header("X-Method")), (200, Some("GET")), "[{mpm}] {r}");
        assert!(r.body.is_empty());
        let r = a.request(&http_request("HEAD", "/headoff", &[("Connection", "close")], b""));
        assert_eq!((r.status, r.header("X-Method")), (200, Some("HEAD")), "[{mpm}] {r}");
        let r = get(&a, "/headoff");
        assert_eq!((r.header("X-Method"), r.text().as_str()), (Some("GET"), "method body"), "[{mpm}] {r}");

        // Missing script: 404.
        let r = get(&a, "/missing");
        assert_eq!(r.status, 404, "[{mpm}] {r}");

        // Script raising at import: 500, traceback in the log.
        let mark = log_mark(&a);
        let r = get(&a, "/importerr");
        assert_eq!(r.status, 500, "[{mpm}] {r}");
        let lines = wait_new_lines(&a, mark, "RuntimeError: import-boom", 1);
        assert!(!lines.is_empty(), "[{mpm}] import error not logged:\n{}", a.error_log());
        assert!(
            !new_lines_with(&a, mark, "Traceback (most recent call last):").is_empty(),
            "[{mpm}] no traceback:\n{}",
            a.error_log()
        );
        assert!(
            !new_lines_with(&a, mark, "importerr.wsgi").is_empty(),
            "[{mpm}] log does not name the script:\n{}",
            a.error_log()
        );

        // Script without `application`: 500 with a line naming the missing callable.
        let mark = log_mark(&a);
        let r = get(&a, "/noapp");
        assert_eq!(r.status, 500, "[{mpm}] {r}");
        let lines = wait_new_lines(&a, mark, "application", 1);
        assert!(
            lines.iter().any(|l| l.contains("noapp.wsgi")),
            "[{mpm}] missing callable not logged:\n{}",
            a.error_log()
        );
        MODE.stop(a);
    }
}

// ---------------------------------------------------------------------------------------------
// threading.local across requests
// ---------------------------------------------------------------------------------------------

#[test]
fn threading_local_persists_on_the_same_thread() {
    for mpm in MODE.mpms() {
        // One thread serves every request: embedded, one Apache child of one thread; daemon,
        // a group of one process of one thread (wsgi.multithread False: it is the group's
        // threads that count, not Apache's).
        let (b, multithread) = match MODE {
            Mode::Embedded => (
                ApacheBuilder::new().mpm(mpm).mpm_config(&one_child(mpm, 1)),
                if mpm.is_threaded() { "True" } else { "False" },
            ),
            Mode::Daemon => (
                ApacheBuilder::new().mpm(mpm).conf(&MODE.preamble_with("processes=1 threads=1")),
                "False",
            ),
        };
        let a = b
            .script("tls.wsgi", TLS_APP)
            .conf("WSGIScriptAlias /tls {dir}/scripts/tls.wsgi\n")
            .conf(SCRIPTS_DIR)
            .start();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let r = get(&a, "/tls");
            assert_eq!(r.status, 200, "[{mpm}] {r}");
            let t = r.text();
            let parts: Vec<&str> = t.split(' ').collect();
            assert_eq!(parts.len(), 3, "[{mpm}] {t}");
            seen.push((parts[0].to_string(), parts[1].to_string(), parts[2].to_string()));
        }
        let counts: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(counts, ["1", "2", "3"], "[{mpm}] threading.local value must persist between requests: {seen:?}");
        assert!(seen.iter().all(|s| s.1 == seen[0].1), "[{mpm}] one thread expected: {seen:?}");
        assert!(seen.iter().all(|s| s.2 == multithread), "[{mpm}] wsgi.multithread: {seen:?}");
        MODE.stop(a);
    }
}


// ---------------------------------------------------------------------------------------------
// Folder mounts
// ---------------------------------------------------------------------------------------------

const PATH_TRANSLATED_APP: &str = r#"
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return [environ['PATH_TRANSLATED'].encode('latin-1')]
"#;

/// WSGIScriptAlias onto a folder of scripts, with and without trailing slashes: the URL names
/// the script, SCRIPT_NAME runs to it and PATH_INFO is the rest; a missing script is 404.
#[test]
fn script_alias_onto_a_folder_of_scripts() {
    const APP: &str = r#"
import os
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%s|%s|%s' % (os.path.basename(__file__), environ['SCRIPT_NAME'], environ['PATH_INFO'])).encode()]
"#;
    for mpm in MODE.mpms() {
        let a = builder(MODE, mpm, &[("folder/one.wsgi", APP), ("folder/two.py", APP), ("pt.wsgi", PATH_TRANSLATED_APP)],
            "WSGIScriptAlias /slash/ {dir}/scripts/folder/\nWSGIScriptAlias /plain {dir}/scripts/folder\nWSGIScriptAlias /pt {dir}/scripts/pt.wsgi\n")
            .start();
        // PATH_TRANSLATED keeps bytes that are not UTF-8 (latin-1 in environ, as every CGI value).
        let r = get(&a, "/pt/raw%FF%E9/x");
        assert_eq!(r.status, 200, "[{mpm}] {r}\n{}", a.error_log());
        assert!(r.body.ends_with(b"/htdocs/raw\xff\xe9/x"), "[{mpm}] {:?}", String::from_utf8_lossy(&r.body));
        for (path, want) in [
            ("/slash/one.wsgi", "one.wsgi|/slash/one.wsgi|"),
            ("/slash/one.wsgi/a/b", "one.wsgi|/slash/one.wsgi|/a/b"),
            ("/plain/two.py/x", "two.py|/plain/two.py|/x"),
            ("/plain/one.wsgi", "one.wsgi|/plain/one.wsgi|"),
        ] {
            let r = get(&a, path);
            assert_eq!((r.status, r.text().as_str()), (200, want), "[{mpm}] {path}: {r}\n{}", a.error_log());
        }
        assert_eq!(get(&a, "/slash/missing.wsgi").status, 404, "[{mpm}]");
        assert!(a.error_log().contains("missing.wsgi' does not exist"), "[{mpm}] {}", a.error_log());
        // The folder itself is not a script: Apache adds the slash (mod_dir), then 403.
        let r = get(&a, "/plain");
        assert_eq!(r.status, 301, "[{mpm}] {r}");
        let r = get(&a, "/plain/");
        assert_eq!(r.status, 403, "[{mpm}] {r}");
        MODE.stop(a);
    }
}

}
