//! Exercises the integration-test harness (tests/common) against Debian's C mod_wsgi, so the
//! harness can be trusted independently of our module.

mod common;

use common::*;
use std::time::Duration;

const HELLO: &str = r#"
def application(environ, start_response):
    status = '200 OK'
    output = b'Hello World!'
    response_headers = [('Content-type', 'text/plain'),
                        ('Content-Length', str(len(output)))]
    start_response(status, response_headers)
    return [output]
"#;

/// No Content-Length: Apache chunks the response for an HTTP/1.1 client.
const STREAM: &str = r#"
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('X-Multi', 'a'), ('X-Multi', 'b')])
    for i in range(5):
        yield ('part%d;' % i).encode()
"#;

const ECHO: &str = r#"
def application(environ, start_response):
    body = environ['wsgi.input'].read()  # to EOF: also works for chunked request bodies
    out = b'%s %s %d:' % (environ['REQUEST_METHOD'].encode(), environ['PATH_INFO'].encode(), len(body)) + body
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('Content-Length', str(len(out)))])
    return [out]
"#;

// %{GLOBAL}: Debian's mod_wsgi 4.9.4 (Python 3.11) children hang after destroying a
// sub-interpreter at shutdown under the threaded MPMs, until Apache SIGKILLs them ~10 s later
// (GrahamDumpleton/mod_wsgi#730, #799). The main interpreter shuts down promptly.
const SCRIPTS_CONF: &str = "\
WSGIApplicationGroup %{GLOBAL}
WSGIChunkedRequest On
WSGIScriptAlias /myapp {dir}/scripts/hello.wsgi
WSGIScriptAlias /stream {dir}/scripts/stream.wsgi
WSGIScriptAlias /echo {dir}/scripts/echo.wsgi
<Directory {dir}/scripts>
    Require all granted
</Directory>
";

fn debian(mpm: Mpm) -> ApacheBuilder {
    ApacheBuilder::new()
        .mpm(mpm)
        .module(DEBIAN_MOD_WSGI)
        .script("hello.wsgi", HELLO)
        .script("stream.wsgi", STREAM)
        .script("echo.wsgi", ECHO)
        .file("htdocs/static.txt", "static content\n")
        .file("htdocs/index.html", "<h1>index</h1>\n")
        .conf(SCRIPTS_CONF)
}

fn check_basics(mpm: Mpm) {
    let a = debian(mpm).start();
    assert_eq!(a.mpm, mpm);

    let r = a.get("/myapp");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.text(), "Hello World!");
    assert!(r.complete && !r.chunked, "{r}");
    assert_eq!(r.header("content-type"), Some("text/plain"));

    let r = a.get("/static.txt");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.text(), "static content\n");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));

    let r = a.get("/");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.text(), "<h1>index</h1>\n");

    assert_eq!(a.get("/nope.txt").status, 404);

    // Scripts are not inside DocumentRoot, and / is denied.
    let r = a.get("/../scripts/hello.wsgi");
    assert!(r.status == 400 || r.status == 404 || r.status == 403, "{r}");

    // Processes: parent + children, all in the server's own process group.
    let procs = a.processes();
    assert!(procs.len() >= 2, "{procs:?}");
    assert!(procs.iter().any(|p| p.pid == a.pid()), "{procs:?}");

    let st = a.stop();
    assert!(st.clean, "unclean stop:\n{}", st.error_log);
    assert!(!st.has_crash(), "{}", st.error_log);
}

#[test]
fn hello_event() {
    check_basics(Mpm::Event);
}

#[test]
fn hello_worker() {
    check_basics(Mpm::Worker);
}

#[test]
fn hello_prefork() {
    check_basics(Mpm::Prefork);
}

#[test]
fn chunked_keepalive_head_post() {
    for mpm in Mpm::ALL {
        let a = debian(mpm).start();

        // Streaming response without Content-Length -> chunked, decoded by the client.
        let r = a.get("/stream");
        assert_eq!(r.status, 200, "{r}");
        assert!(r.chunked && r.complete, "{r}");
        assert_eq!(r.text(), "part0;part1;part2;part3;part4;");
        assert_eq!(r.headers_all("x-multi"), vec!["a", "b"]);

        // HTTP/1.0: no chunking, body delimited by close.
        let r = a.request(b"GET /stream HTTP/1.0\r\n\r\n");
        assert_eq!(r.status, 200, "{r}");
        assert!(!r.chunked && r.complete, "{r}");
        assert_eq!(r.text(), "part0;part1;part2;part3;part4;");

        // Keep-alive: three requests on one connection.
        let mut c = a.connect();
        let r1 = c.send(&http_request("GET", "/myapp", &[], b""));
        assert_eq!(r1.text(), "Hello World!");
        let r2 = c.send(&http_request("GET", "/stream", &[], b""));
        assert_eq!(r2.text(), "part0;part1;part2;part3;part4;");
        let r3 = c.send(&http_request("HEAD", "/static.txt", &[], b""));
        assert_eq!(r3.status, 200, "{r3}");
        assert!(r3.body.is_empty());
        assert_eq!(r3.header("Content-Length"), Some("15"));
        let r4 = c.send(&http_request("GET", "/static.txt", &[("Connection", "close")], b""));
        assert_eq!(r4.text(), "static content\n");
        assert!(c.closed_by_peer(Duration::from_secs(5)));
        // Close our end too: until then Apache sits in lingering close, and a prefork child
        // stays busy for up to 2 s.
        drop(c);

        // Pipelining: two requests in one write.
        let mut c = a.connect();
        let mut two = http_request("POST", "/echo/x", &[], b"hello");
        two.extend(http_request("POST", "/echo/y", &[("Connection", "close")], b"world!"));
        c.write(&two);
        assert_eq!(c.read_response(false).unwrap().text(), "POST /x 5:hello");
        assert_eq!(c.read_response(false).unwrap().text(), "POST /y 6:world!");
        drop(c);

        // Chunked request body and Expect: 100-continue.
        let mut req = http_request(
            "POST",
            "/echo",
            &[("Transfer-Encoding", "chunked"), ("Connection", "close")],
            b"",
        );
        req.extend(chunked(b"abcdefghij", 3));
        let r = a.request(&req);
        assert_eq!(r.text(), "POST  10:abcdefghij", "{r}");

        let mut c = a.connect();
        c.write(&http_request(
            "POST",
            "/echo",
            &[("Expect", "100-continue"), ("Content-Length", "3"), ("Connection", "close")],
            b"",
        ));
        // mod_wsgi only asks for the body when the app reads it: the interim 100 comes first.
        c.write(b"xyz");
        let r = c.read_response(false).unwrap();
        assert_eq!(r.text(), "POST  3:xyz", "{r}");
        drop(c);

        let r = a.post("/echo", "text/plain", b"posted");
        assert_eq!(r.text(), "POST  6:posted");
        drop(a); // Drop stops it too
    }
}

#[test]
fn graceful_restart_and_logs() {
    let a = debian(Mpm::Event).log_level("info").start();
    assert_eq!(a.get("/myapp").status, 200);
    // mod_wsgi logs at info when it loads the script.
    assert!(
        a.wait_log("hello.wsgi", Duration::from_secs(10)),
        "{}",
        a.error_log()
    );
    let parent = a.pid();
    a.graceful();
    assert_eq!(a.pid(), parent, "graceful restart keeps the parent");
    let r = a.get("/myapp");
    assert_eq!(r.text(), "Hello World!");
    assert!(a.access_log().contains("\"GET /myapp HTTP/1.1\" 200 12"), "{}", a.access_log());
    a.restart();
    assert_eq!(a.get("/myapp").status, 200);
    let st = a.stop();
    assert!(st.clean && !st.has_crash(), "{}", st.error_log);
}

#[test]
fn daemon_mode_processes_are_cleaned_up() {
    let a = debian(Mpm::Prefork)
        .conf(
            "WSGIDaemonProcess selftest processes=2 threads=2 display-name=%{GROUP}\n\
             WSGIScriptAlias /d {dir}/scripts/hello.wsgi process-group=selftest application-group=%{GLOBAL}\n",
        )
        .start();
    assert_eq!(a.get("/d").text(), "Hello World!");
    let procs = a.processes();
    let daemons = procs.iter().filter(|p| p.cmdline.contains("(wsgi:selftest)")).count();
    assert_eq!(daemons, 2, "{procs:#?}");
    let pgid = a.pid();
    let st = a.stop();
    assert!(st.clean, "{}", st.error_log);
    assert!(processes_in_group(pgid).is_empty());
}

#[test]
fn config_errors_are_reported() {
    let (ok, out) = Apache::config_test(
        ApacheBuilder::new().module(DEBIAN_MOD_WSGI).conf("WSGINoSuchDirective on"),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("WSGINoSuchDirective"), "{out}");

    let (ok, out) = Apache::config_test(debian(Mpm::Worker));
    assert!(ok, "{out}");
    assert!(out.contains("Syntax OK"), "{out}");
}

#[test]
fn start_failure_panics_with_log() {
    let b = ApacheBuilder::new()
        .module(DEBIAN_MOD_WSGI)
        .start_timeout(Duration::from_secs(5))
        // Syntax is fine (`apache2 -t` does not check it), but startup cannot write the pid file.
        .conf("PidFile /nonexistent-dir/x.pid");
    let dir = b.dir().to_path_buf();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.start()))
        .expect_err("start must panic");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("did not start"), "{msg}");
    assert!(msg.contains("nonexistent-dir"), "{msg}");
    // A failed start keeps its directory for post-mortems; this failure was intended.
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_module_panics() {
    let b = ApacheBuilder::new().module(manifest_dir().join("target/does-not-exist.so"));
    let dir = b.dir().to_path_buf();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.start()))
        .expect_err("start must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("MOD_WSGI_SO"), "{msg}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_module_static_only() {
    let a = ApacheBuilder::new()
        .without_module()
        .mpm(Mpm::Worker)
        .file("htdocs/a/b.txt", b"deep")
        .start();
    assert_eq!(a.get("/a/b.txt").text(), "deep");
}
