//! The module loads as a drop-in `wsgi_module`, WSGIScriptAlias maps URLs to scripts
//! with Apache's access control applied, the seed's configurations work under every MPM, bad
//! directives are configuration errors, and the server survives graceful restarts.

mod common;

use std::time::{Duration, Instant};

use common::{Apache, ApacheBuilder, Mpm, seed_vhost};

const HELLO: &str = include_str!("../examples/hello.wsgi");

/// The seed's Apache 2.2-style access control at the root, so that its `Order allow,deny` /
/// `Allow from all` sections grant access exactly as the guide says.
const ROOT_22: &str = "    AllowOverride None\n    Order deny,allow\n    Deny from all";

/// The files the seed's configurations (examples/seed-*.conf, read by `seed_vhost`) serve.
fn seed_files(b: ApacheBuilder) -> ApacheBuilder {
    b.file("documents/index.html", "static index\n")
        .file("documents/robots.txt", "User-agent: *\n")
        .file("documents/favicon.ico", "ICO")
        .file("documents/media/style.css", "body {}\n")
        .file("wsgi-scripts/myapp.wsgi", HELLO)
}

fn host(h: &str) -> [(&str, &str); 1] {
    [("Host", h)]
}

fn assert_hello(a: &Apache, path: &str, host_name: &str) {
    let r = a.get_with(path, &host(host_name));
    assert_eq!(r.status, 200, "{path} on {host_name}: {r}\n{}", a.error_log());
    assert_eq!(r.body, b"Hello World!", "{path}");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert_eq!(r.header("Content-Length"), Some("12"));
}

#[test]
fn seed_sub_url_mount_under_every_mpm() {
    for mpm in Mpm::ALL {
        let a = seed_files(ApacheBuilder::new().mpm(mpm).root_access(ROOT_22)).vhost(&seed_vhost("sub-url")).start();
        assert_hello(&a, "/myapp", "www.example.com");
        assert_hello(&a, "/myapp/", "example.com");
        assert_hello(&a, "/myapp/some/path?x=1", "www.example.com");
        let r = a.get_with("/index.html", &host("www.example.com"));
        assert_eq!((r.status, r.text().as_str()), (200, "static index\n"), "{mpm:?}");
        let r = a.get_with("/myappx", &host("www.example.com"));
        assert_eq!(r.status, 404, "a longer name is not under the mount ({mpm:?})");
        let log = a.error_log();
        assert!(log.contains("Initializing Python 3.11 in process"), "{log}");
        assert!(log.contains("wsgi-scripts/myapp.wsgi'"), "script load is logged at info: {log}");
        let stopped = a.stop();
        assert!(!stopped.has_crash(), "{mpm:?}: {}", stopped.error_log);
    }
}

#[test]
fn seed_root_mount_with_alias_lines_under_every_mpm() {
    for mpm in Mpm::ALL {
        let a = seed_files(ApacheBuilder::new().mpm(mpm).root_access(ROOT_22)).vhost(&seed_vhost("root")).start();
        assert_hello(&a, "/", "www.example.com");
        assert_hello(&a, "/index.html", "www.example.com"); // DocumentRoot is hidden
        let r = a.get_with("/robots.txt", &host("www.example.com"));
        assert_eq!((r.status, r.text().as_str()), (200, "User-agent: *\n"), "{mpm:?}");
        let r = a.get_with("/favicon.ico", &host("www.example.com"));
        assert_eq!((r.status, r.body.as_slice()), (200, b"ICO".as_slice()));
        let r = a.get_with("/media/style.css", &host("www.example.com"));
        assert_eq!((r.status, r.text().as_str()), (200, "body {}\n"));
        let stopped = a.stop();
        assert!(!stopped.has_crash(), "{mpm:?}: {}", stopped.error_log);
    }
}

#[test]
fn seed_daemon_form_passes_config_test() {
    let b = seed_files(ApacheBuilder::new().root_access(ROOT_22)).vhost(&seed_vhost("daemon"));
    let (ok, out) = Apache::config_test(b);
    assert!(ok, "apache2 -t must accept the seed's daemon form: {out}");
    assert!(out.contains("Syntax OK"), "{out}");
}

#[test]
fn script_directory_without_access_is_forbidden() {
    for mpm in Mpm::ALL {
        let a = ApacheBuilder::new()
            .mpm(mpm)
            .script("app.wsgi", HELLO)
            .file("private/app.wsgi", HELLO)
            .conf("WSGIScriptAlias /open {dir}/scripts/app.wsgi\n<Directory {dir}/scripts>\n  Require all granted\n</Directory>")
            .conf("WSGIScriptAlias /closed {dir}/private/app.wsgi")
            .start();
        assert_eq!(a.get("/open").status, 200);
        let r = a.get("/closed");
        assert_eq!(r.status, 403, "{mpm:?}: {r}");
        assert!(a.error_log().contains("client denied by server configuration"), "{}", a.error_log());
    }
}

#[test]
fn add_handler_needs_exec_cgi() {
    let a = ApacheBuilder::new()
        .file("h/app.wsgi", HELLO)
        .file("x/app.wsgi", HELLO)
        .conf("Alias /h {dir}/h\n<Directory {dir}/h>\n  Require all granted\n  AddHandler wsgi-script .wsgi\n</Directory>")
        .conf("Alias /x {dir}/x\n<Directory {dir}/x>\n  Require all granted\n  Options +ExecCGI\n  AddHandler wsgi-script .wsgi\n</Directory>")
        .start();
    let r = a.get("/x/app.wsgi");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello World!"), "{r}\n{}", a.error_log());
    let r = a.get("/h/app.wsgi");
    assert_eq!(r.status, 403, "{r}");
    let log = a.error_log();
    let line = log.lines().find(|l| l.contains("WR0128")).unwrap_or_else(|| panic!("no WR0128 line:\n{log}"));
    assert!(line.contains("Options +ExecCGI"), "the line names the fix: {line}");
}

#[test]
fn ifmodule_mod_wsgi_c_matches() {
    let a = ApacheBuilder::new()
        .script("app.wsgi", HELLO)
        .conf("<IfModule mod_wsgi.c>\nWSGIScriptAlias /app {dir}/scripts/app.wsgi\n</IfModule>\n<Directory {dir}/scripts>\n  Require all granted\n</Directory>")
        .start();
    assert_eq!(a.get("/app").body, b"Hello World!");
}

#[test]
fn server_banner_names_module_and_python() {
    let a = ApacheBuilder::new().start();
    let log = a.error_log();
    assert!(log.contains("mod_wsgi/") && log.contains("Python/3.11") && log.contains("resuming normal operations"), "{log}");
}

fn config_error(conf: &str) -> String {
    let b = ApacheBuilder::new().script("app.wsgi", HELLO).conf(conf);
    let (ok, out) = Apache::config_test(b);
    assert!(!ok, "configuration should be refused: {conf}\n{out}");
    assert!(out.contains("httpd.conf"), "the error names the file: {out}");
    assert!(out.contains("line"), "the error names the line: {out}");
    out
}

#[test]
fn misplaced_or_malformed_script_alias_is_a_configuration_error() {
    let out = config_error("<Directory {dir}/scripts>\n  WSGIScriptAlias /a {dir}/scripts/app.wsgi\n</Directory>");
    assert!(out.contains("WSGIScriptAlias") && out.contains("VirtualHost"), "{out}");
    let out = config_error("<Location /x>\n  WSGIScriptAlias /a {dir}/scripts/app.wsgi\n</Location>");
    assert!(out.contains("WSGIScriptAlias"), "{out}");
    let out = config_error("<Files app.wsgi>\n  WSGIScriptAlias /a {dir}/scripts/app.wsgi\n</Files>");
    assert!(out.contains("WSGIScriptAlias"), "{out}");
    let out = config_error("WSGIScriptAlias /a scripts/app.wsgi");
    assert!(out.contains("absolute"), "{out}");
    let out = config_error("WSGIScriptAlias /a/ {dir}/scripts/app.wsgi");
    assert!(out.contains("trailing slash"), "{out}");
    let out = config_error("WSGIScriptAlias /a {dir}/scripts/app.wsgi bogus=1");
    assert!(out.contains("bogus"), "{out}");
    let out = config_error("WSGIDaemonProcess g thread=5");
    assert!(out.contains("threads"), "a misspelt option suggests the right one: {out}");
    let out = config_error("WSGIDaemonProcess g processes=x");
    assert!(out.contains("processes"), "{out}");
}

#[test]
fn htaccess_cannot_mount_scripts() {
    let a = ApacheBuilder::new()
        .script("app.wsgi", HELLO)
        .file("htdocs/sub/.htaccess", "WSGIScriptAlias /x /tmp/x.wsgi\n")
        .file("htdocs/sub/index.html", "x")
        .conf("<Directory {dir}/htdocs/sub>\n  AllowOverride All\n  Require all granted\n</Directory>")
        .start();
    let r = a.get("/sub/index.html");
    assert_eq!(r.status, 500, "{r}");
    assert!(a.error_log().contains("WSGIScriptAlias not allowed here"), "{}", a.error_log());
}

#[test]
fn first_matching_alias_wins_and_vhost_comes_before_server() {
    let a = ApacheBuilder::new()
        .script("one.wsgi", &HELLO.replace("Hello World!", "one"))
        .script("two.wsgi", &HELLO.replace("Hello World!", "two"))
        .script("three.wsgi", &HELLO.replace("Hello World!", "three"))
        .conf("<Directory {dir}/scripts>\n  Require all granted\n</Directory>")
        .conf("WSGIScriptAlias /app/sub {dir}/scripts/one.wsgi")
        .conf("WSGIScriptAlias /app {dir}/scripts/two.wsgi")
        .conf("WSGIScriptAlias /other {dir}/scripts/two.wsgi")
        .vhost("<VirtualHost *:{port}>\n  ServerName v.example\n  WSGIScriptAlias /app {dir}/scripts/three.wsgi\n</VirtualHost>")
        .vhost("<VirtualHost *:{port}>\n  ServerName localhost\n</VirtualHost>")
        .start();
    // The default (first) vhost is localhost's: server-wide aliases apply.
    assert_eq!(a.get("/app/sub/x").text(), "one");
    assert_eq!(a.get("/app/x").text(), "two");
    assert_eq!(a.get_with("/app/sub", &host("v.example")).text(), "three");
    assert_eq!(a.get_with("/other", &host("v.example")).text(), "two", "server-wide aliases are inherited");
}

#[test]
fn missing_failing_and_incomplete_scripts() {
    for mpm in Mpm::ALL {
        let a = ApacheBuilder::new()
            .mpm(mpm)
            .script("raises.wsgi", "raise RuntimeError('boom at import')\n")
            .script("noapp.wsgi", "x = 1\n")
            .conf("<Directory {dir}/scripts>\n  Require all granted\n</Directory>")
            .conf("WSGIScriptAlias /missing {dir}/scripts/missing.wsgi")
            .conf("WSGIScriptAlias /raises {dir}/scripts/raises.wsgi")
            .conf("WSGIScriptAlias /noapp {dir}/scripts/noapp.wsgi")
            .start();
        assert_eq!(a.get("/missing").status, 404);
        assert_eq!(a.get("/raises").status, 500);
        assert_eq!(a.get("/noapp").status, 500);
        let log = a.error_log();
        assert!(log.contains("WR0101") && log.contains("missing.wsgi"), "{log}");
        assert!(log.contains("WR0102") && log.contains("RuntimeError: boom at import"), "{log}");
        assert!(log.contains("Traceback (most recent call last):"), "{log}");
        assert!(log.contains("WR0103") && log.contains("'application'"), "{log}");
        let stopped = a.stop();
        assert!(!stopped.has_crash(), "{mpm:?}: {}", stopped.error_log);
    }
}

#[test]
fn log_level_per_module_controls_info_lines() {
    let a = ApacheBuilder::new()
        .log_level("warn")
        .script("app.wsgi", HELLO)
        .conf("WSGIScriptAlias /app {dir}/scripts/app.wsgi\n<Directory {dir}/scripts>\n  Require all granted\n</Directory>")
        .start();
    assert_eq!(a.get("/app").status, 200);
    assert!(!a.error_log().contains("Initializing Python"), "info lines must be hidden at warn: {}", a.error_log());
}

#[test]
fn graceful_restart_under_light_load_keeps_serving() {
    for mpm in Mpm::ALL {
        let a = ApacheBuilder::new()
            .mpm(mpm)
            .script("app.wsgi", HELLO)
            .conf("WSGIScriptAlias /app {dir}/scripts/app.wsgi\n<Directory {dir}/scripts>\n  Require all granted\n</Directory>")
            .start();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (ok, failed) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let (mut ok, mut failed) = (0, Vec::new());
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                    match a.try_request(&common::http_request("GET", "/app", &[("Connection", "close")], b"")) {
                        Ok(r) if r.status == 200 && r.body == b"Hello World!" => ok += 1,
                        Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                        // A connection refused/reset while the listener is handed over is
                        // Apache's own behaviour during a restart; count it separately.
                        Err(e) => failed.push(e),
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                (ok, failed)
            });
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(400));
                a.graceful();
            }
            std::thread::sleep(Duration::from_millis(400));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            h.join().unwrap()
        });
        assert!(ok > 20, "{mpm:?}: only {ok} requests succeeded");
        assert!(failed.is_empty(), "{mpm:?}: failed requests during graceful restarts: {failed:?}\n{}", a.error_log());
        assert_eq!(a.get("/app").body, b"Hello World!");
        let stopped = a.stop();
        assert!(!stopped.has_crash(), "{mpm:?}: {}", stopped.error_log);
    }
}

#[test]
fn atexit_functions_run_when_a_child_exits() {
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let b = ApacheBuilder::new().mpm(mpm);
        // Outside the test directory, which the harness removes when Apache stops.
        let marker = std::env::temp_dir().join(format!("mod_wsgi-atexit-{}-{mpm:?}.log", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let a = b
            .script(
                "app.wsgi",
                &format!(
                    "import atexit, os\natexit.register(lambda: open({:?}, 'a').write('exit %d\\n' % os.getpid()))\n{HELLO}",
                    marker.to_string_lossy()
                ),
            )
            .conf("WSGIScriptAlias /app {dir}/scripts/app.wsgi\n<Directory {dir}/scripts>\n  Require all granted\n</Directory>")
            .start();
        assert_eq!(a.get("/app").body, b"Hello World!");
        let stopped = a.stop();
        assert!(!stopped.has_crash(), "{mpm:?}: {}", stopped.error_log);
        // A child may finish its clean-up just after the parent has gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut log = String::new();
        while !log.starts_with("exit ") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            log = std::fs::read_to_string(&marker).unwrap_or_default();
        }
        let _ = std::fs::remove_file(&marker);
        assert!(log.starts_with("exit "), "{mpm:?}: atexit did not run at child exit: {log:?}");
    }
}

#[test]
fn error_override_lets_apache_render_error_pages() {
    const APP: &str = r#"
def application(environ, start_response):
    code = environ['QUERY_STRING'] or '200'
    body = b'app body ' + code.encode()
    start_response(code + ' X', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
"#;
    let a = ApacheBuilder::new()
        .script("app.wsgi", APP)
        .conf("<Directory {dir}/scripts>\n  Require all granted\n</Directory>")
        .conf("ErrorDocument 404 \"custom not found\"")
        .conf("WSGIDaemonProcess g processes=1 threads=2")
        .conf("WSGIScriptAlias /plain {dir}/scripts/app.wsgi")
        .conf("WSGIScriptAlias /over {dir}/scripts/app.wsgi")
        .conf("WSGIScriptAlias /dover {dir}/scripts/app.wsgi process-group=g")
        .conf("<Location /over>\n  WSGIErrorOverride On\n</Location>\n<Location /dover>\n  WSGIErrorOverride On\n</Location>")
        .start();
    let r = a.get("/plain?404");
    assert_eq!((r.status, r.text().as_str()), (404, "app body 404"), "{r}");
    for path in ["/over", "/dover"] {
        let r = a.get(&format!("{path}?404"));
        assert_eq!((r.status, r.text().as_str()), (404, "custom not found"), "{path}: {r}\n{}", a.error_log());
        let r = a.get(&format!("{path}?200"));
        assert_eq!((r.status, r.text().as_str()), (200, "app body 200"), "{path}: {r}");
        let r = a.get(&format!("{path}?500"));
        assert_eq!(r.status, 500, "{path}: {r}");
        assert!(!r.text().contains("app body"), "{path}: Apache's own 500 page: {r}");
    }
    assert!(!a.error_log().contains("WR0117"), "{}", a.error_log());
}
