//! Scripts that Apache's request phases call, run in the Apache child whatever mode the
//! application runs in: the authn provider `wsgi` (WSGIAuthUserScript with Basic and Digest),
//! `Require wsgi-group` (WSGIAuthGroupScript), WSGIAccessScript and WSGIDispatchScript; and the
//! script's own say in reloading (`reload_required`, `__mtime__`); and WSGIHandlerScript, a
//! script serving a named Apache handler.
//!
//! Requests with credentials are made with curl (`-u`, `--digest`), as a user would.

mod common;

use std::process::Command;
use std::time::Duration;

use common::mode::*;
use common::*;

const AUTH_SCRIPT: &str = r#"
import hashlib

USERS = {'spy': 'secret', 'citizen': 'secret'}
GROUPS = {'spy': ['secret-agents', b'bytes-group']}

def check_password(environ, user, password):
    if user == 'boom':
        raise ValueError('auth backend down')
    if user == 'odd':
        return 'yes'
    assert 'HTTP_AUTHORIZATION' not in environ
    assert environ['mod_wsgi.application_group'] == ''
    if user not in USERS:
        return None
    return password == USERS[user]

def get_realm_hash(environ, user, realm):
    if user not in USERS:
        return None
    return hashlib.md5(('%s:%s:%s' % (user, realm, USERS[user])).encode()).hexdigest()

def groups_for_user(environ, user):
    return GROUPS.get(user, [])

def allow_access(environ, host):
    if environ['PATH_INFO'] == '/access/deny':
        return False
    if environ['PATH_INFO'] == '/access/none':
        return None
    if environ['PATH_INFO'] == '/access/boom':
        raise RuntimeError('access backend down')
    return host == '127.0.0.1'
"#;

const APP: &str = r#"
import os
def application(environ, start_response):
    body = 'user=%s;auth_type=%s;pid=%d;group=%s' % (environ.get('REMOTE_USER', '-'),
        environ.get('AUTH_TYPE', '-'), os.getpid(), environ['mod_wsgi.process_group'])
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode()]
"#;

const AUTH_CONF: &str = r#"
LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
LoadModule auth_digest_module /usr/lib/apache2/modules/mod_auth_digest.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
WSGIScriptAlias /app {dir}/scripts/app.wsgi
<Directory {dir}/scripts>
    Require all granted
</Directory>
<Location /app/basic>
    AuthType Basic
    AuthName "Basic Area"
    AuthBasicProvider wsgi
    WSGIAuthUserScript {dir}/scripts/auth.wsgi
    Require valid-user
</Location>
<Location /app/digest>
    AuthType Digest
    AuthName "Digest Area"
    AuthDigestProvider wsgi
    WSGIAuthUserScript {dir}/scripts/auth.wsgi
    Require valid-user
</Location>
<Location /app/group>
    AuthType Basic
    AuthName "Group Area"
    AuthBasicProvider wsgi
    WSGIAuthUserScript {dir}/scripts/auth.wsgi
    WSGIAuthGroupScript {dir}/scripts/auth.wsgi
    Require wsgi-group secret-agents
</Location>
<Location /app/bytes-group>
    AuthType Basic
    AuthName "Group Area"
    AuthBasicProvider wsgi
    WSGIAuthUserScript {dir}/scripts/auth.wsgi
    WSGIAuthGroupScript {dir}/scripts/auth.wsgi
    Require wsgi-group other bytes-group
</Location>
<Location /app/access>
    WSGIAccessScript {dir}/scripts/auth.wsgi
</Location>
"#;

/// `curl -s` with `args` against `url`: (status, body).
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "20", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("curl is needed for these tests (scripts/setup.sh installs it): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn auth_server(mode: Mode, mpm: Mpm) -> Apache {
    mode.builder(mpm).script("app.wsgi", APP).script("auth.wsgi", AUTH_SCRIPT).conf(AUTH_CONF).start()
}

mode_suite! {

#[test]
fn basic_digest_and_group_auth() {
    for mpm in MODE.mpms() {
        let a = auth_server(MODE, mpm);
        let url = |p: &str| a.url(p);

        // Basic: challenge, success (REMOTE_USER and AUTH_TYPE reach the app), wrong password,
        // unknown user.
        let r = a.get("/app/basic");
        assert_eq!(r.status, 401, "[{mpm}] {r}\n{}", a.error_log());
        assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"Basic Area\""), "[{mpm}] {r}");
        let (s, body) = curl(&url("/app/basic"), &["-u", "spy:secret"]);
        assert_eq!(s, 200, "[{mpm}] {body}\n{}", a.error_log());
        assert!(body.starts_with("user=spy;auth_type=Basic;"), "[{mpm}] {body}");
        assert!(body.ends_with(&format!("group={}", MODE.process_group())), "[{mpm}] {body}");
        assert_eq!(curl(&url("/app/basic"), &["-u", "spy:wrong"]).0, 401, "[{mpm}]");
        assert_eq!(curl(&url("/app/basic"), &["-u", "nobody:x"]).0, 401, "[{mpm}]");

        // Digest, with the realm hash from get_realm_hash.
        assert_eq!(a.get("/app/digest").status, 401, "[{mpm}]");
        let (s, body) = curl(&url("/app/digest"), &["--digest", "-u", "spy:secret"]);
        assert_eq!(s, 200, "[{mpm}] {body}\n{}", a.error_log());
        assert!(body.starts_with("user=spy;auth_type=Digest;"), "[{mpm}] {body}");
        assert_eq!(curl(&url("/app/digest"), &["--digest", "-u", "spy:wrong"]).0, 401, "[{mpm}]");

        // Require wsgi-group: a member passes (str or bytes group names), a non-member and a
        // wrong password get 401 (Apache's answer when authz fails for an authenticated user).
        let (s, body) = curl(&url("/app/group"), &["-u", "spy:secret"]);
        assert_eq!(s, 200, "[{mpm}] {body}\n{}", a.error_log());
        assert_eq!(curl(&url("/app/bytes-group"), &["-u", "spy:secret"]).0, 200, "[{mpm}]");
        assert_eq!(curl(&url("/app/group"), &["-u", "citizen:secret"]).0, 401, "[{mpm}]");
        assert_eq!(curl(&url("/app/group"), &["-u", "spy:wrong"]).0, 401, "[{mpm}]");

        // A raising check_password is a 500 with the traceback in the log; a value of the wrong
        // type is a 500 with one line naming the value.
        let (s, _) = curl(&url("/app/basic"), &["-u", "boom:x"]);
        assert_eq!(s, 500, "[{mpm}]");
        assert!(a.wait_log("ValueError: auth backend down", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        assert!(a.error_log().contains("WR0131: exception raised by check_password()"), "[{mpm}] {}", a.error_log());
        let (s, _) = curl(&url("/app/basic"), &["-u", "odd:x"]);
        assert_eq!(s, 500, "[{mpm}]");
        assert!(a.wait_log("check_password() in WSGIAuthUserScript", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        assert!(a.error_log().contains("returned 'yes'; it must return True, False or None"), "[{mpm}] {}", a.error_log());

        // The server keeps serving.
        assert_eq!(curl(&url("/app/basic"), &["-u", "spy:secret"]).0, 200, "[{mpm}]");
        MODE.stop(a);
    }
}

#[test]
fn access_script_allows_denies_and_declines() {
    for mpm in MODE.mpms() {
        let a = auth_server(MODE, mpm);
        let r = a.get("/app/access/ok");
        assert_eq!(r.status, 200, "[{mpm}] {r}\n{}", a.error_log());
        assert!(r.text().starts_with("user=-;auth_type=-;"), "[{mpm}] {r}");
        let r = a.get("/app/access/deny");
        assert_eq!(r.status, 403, "[{mpm}] {r}");
        assert!(a.wait_log("WR0132: client denied by WSGIAccessScript", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        // None: no opinion; the other access rules (Require all granted) decide.
        assert_eq!(a.get("/app/access/none").status, 200, "[{mpm}]");
        let r = a.get("/app/access/boom");
        assert_eq!(r.status, 500, "[{mpm}] {r}");
        assert!(a.wait_log("RuntimeError: access backend down", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        assert_eq!(a.get("/app/access/ok").status, 200, "[{mpm}]");
        MODE.stop(a);
    }
}

#[test]
fn dispatch_script_chooses_interpreter_and_callable() {
    const DISPATCH: &str = r#"
def application_group(environ):
    if environ['PATH_INFO'].startswith('/sub'):
        return 'dispatched-sub'
    if environ['PATH_INFO'].startswith('/boom'):
        raise KeyError('no route')
    return ''

def callable_object(environ):
    return 'alt' if environ['PATH_INFO'].startswith('/alt') else None
"#;
    const TARGET: &str = r#"
import mod_wsgi
def _answer(name, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%s|%s' % (name, mod_wsgi.application_group)).encode()]
def application(environ, start_response):
    return _answer('application', start_response)
def alt(environ, start_response):
    return _answer('alt', start_response)
"#;
    for mpm in MODE.mpms() {
        let a = MODE
            .builder(mpm)
            .script("target.wsgi", TARGET)
            .script("dispatch.wsgi", DISPATCH)
            .conf("WSGIDispatchScript {dir}/scripts/dispatch.wsgi\nWSGIScriptAlias /t {dir}/scripts/target.wsgi\n<Directory {dir}/scripts>\n Require all granted\n</Directory>\n")
            .start();
        let r = a.get("/t/plain");
        assert_eq!((r.status, r.text().as_str()), (200, "application|"), "[{mpm}] {r}\n{}", a.error_log());
        let r = a.get("/t/sub");
        assert_eq!((r.status, r.text().as_str()), (200, "application|dispatched-sub"), "[{mpm}] {r}\n{}", a.error_log());
        let r = a.get("/t/alt");
        assert_eq!((r.status, r.text().as_str()), (200, "alt|"), "[{mpm}] {r}\n{}", a.error_log());
        let r = a.get("/t/boom");
        assert_eq!(r.status, 500, "[{mpm}] {r}");
        assert!(a.wait_log("KeyError: 'no route'", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        MODE.stop(a);
    }
}

#[test]
fn handler_script_serves_its_apache_handler() {
    const HANDLER: &str = r#"
import mod_wsgi
def handle_request(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%s|%s|%s|%s' % (environ['mod_wsgi.handler_script'], environ['SCRIPT_NAME'],
        environ['PATH_INFO'], environ['mod_wsgi.process_group'])).encode()]
def other(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'other']
"#;
    for mpm in MODE.mpms() {
        let b = MODE.builder(mpm).script("handler.wsgi", HANDLER).file("htdocs/page.xyz", "not python");
        let script = b.dir().join("scripts/handler.wsgi").display().to_string();
        let a = b
            .conf("WSGIHandlerScript my-handler {dir}/scripts/handler.wsgi\nWSGIHandlerScript other-handler {dir}/scripts/handler.wsgi callable-object=other\n\
                   <Location /h>\n SetHandler my-handler\n</Location>\n<Location /o>\n SetHandler other-handler\n</Location>\n\
                   <Directory {dir}/htdocs>\n AddHandler my-handler .xyz\n</Directory>\n")
            .start();
        // SetHandler: any URL under the location, whether or not a file is there.
        let r = a.get("/h/any/where");
        assert_eq!(r.status, 200, "[{mpm}] {r}\n{}", a.error_log());
        assert_eq!(r.text(), format!("{script}|/h|/any/where|{}", MODE.process_group()), "[{mpm}]");
        // AddHandler by extension: the file is the resource, the handler script serves it.
        let r = a.get("/page.xyz/more");
        assert_eq!(r.status, 200, "[{mpm}] {r}\n{}", a.error_log());
        assert_eq!(r.text(), format!("{script}|/page.xyz|/more|{}", MODE.process_group()), "[{mpm}]");
        // callable-object= names another function of the script.
        assert_eq!(a.get("/o/x").text(), "other", "[{mpm}]");
        MODE.stop(a);
    }
}

#[test]
fn reload_required_and_missing_mtime_reload_the_script() {
    const APP: &str = r#"
import os, sys
FLAG = os.path.join(os.path.dirname(__file__), 'flag')
def _flag():
    with open(FLAG) as f:
        return f.read()
SEEN = _flag()
TOKEN = os.urandom(6).hex()
def reload_required(resource):
    assert resource == __file__
    return _flag() != SEEN
def application(environ, start_response):
    if environ['PATH_INFO'] == '/strip':
        sys.modules[__name__].__dict__.pop('__mtime__', None)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [TOKEN.encode()]
"#;
    for mpm in MODE.mpms() {
        // One Apache child: in embedded mode every request sees the same interpreter.
        let b = MODE.builder(mpm).mpm_config(&one_child(mpm, 2)).script("app.wsgi", APP).file("scripts/flag", "one");
        let flag = b.dir().join("scripts/flag");
        let a = b
            .conf("WSGIScriptAlias /r {dir}/scripts/app.wsgi\n<Directory {dir}/scripts>\n Require all granted\n</Directory>\n")
            .start();
        let token = || {
            let r = a.get("/r/x");
            assert_eq!(r.status, 200, "[{mpm}] {r}\n{}", a.error_log());
            r.text()
        };
        let t1 = token();
        assert_eq!(token(), t1, "[{mpm}] reloaded although nothing changed");
        // reload_required(resource) returning True: executed again, once.
        std::fs::write(&flag, "two").unwrap();
        let t2 = token();
        assert_ne!(t2, t1, "[{mpm}] reload_required() returned True but the script was not reloaded\n{}", a.error_log());
        assert_eq!(token(), t2, "[{mpm}]");
        // A module whose __mtime__ is gone is executed again on the next request.
        let r = a.get("/r/strip");
        assert_eq!(r.text(), t2, "[{mpm}]");
        let t3 = token();
        assert_ne!(t3, t2, "[{mpm}] __mtime__ removed but the script was not reloaded");
        assert!(a.error_log().contains("Loading WSGI script '"), "[{mpm}] {}", a.error_log());
        MODE.stop(a);
    }
}

}

/// WSGIRestrictEmbedded On with auth and dispatch scripts: Python runs in the Apache children
/// for the scripts, the dispatch script sends requests to a daemon group, and a request left in
/// embedded mode is refused with one line saying what to do.
#[test]
fn restrict_embedded_with_dispatch_to_daemon() {
    const DISPATCH: &str = r#"
def process_group(environ):
    return 'd1' if environ['PATH_INFO'].endswith('/daemon') else None
"#;
    for mpm in Mpm::ALL {
        let a = ApacheBuilder::new()
            .mpm(mpm)
            .script("app.wsgi", APP)
            .script("auth.wsgi", AUTH_SCRIPT)
            .script("dispatch.wsgi", DISPATCH)
            .conf("WSGIRestrictEmbedded On\nWSGIDaemonProcess d1 threads=2\n")
            .conf(AUTH_CONF)
            .conf("WSGIDispatchScript {dir}/scripts/dispatch.wsgi\n<Location /app/r>\n WSGIRestrictProcess d2 %{GLOBAL}\n</Location>\n")
            .start();
        let (s, body) = curl(&a.url("/app/basic/daemon"), &["-u", "spy:secret"]);
        assert_eq!(s, 200, "[{mpm}] {body}\n{}", a.error_log());
        assert!(body.starts_with("user=spy;auth_type=Basic;") && body.ends_with("group=d1"), "[{mpm}] {body}");
        let (s, _) = curl(&a.url("/app/basic/here"), &["-u", "spy:secret"]);
        assert_eq!(s, 500, "[{mpm}]");
        assert!(a.wait_log("WR0133: WSGIRestrictEmbedded is On", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        // WSGIRestrictProcess: the group the dispatch script chose is not allowed there.
        assert_eq!(a.get("/app/r/daemon").status, 403, "[{mpm}]");
        assert!(a.wait_log("WR0135: process group 'd1' is not allowed", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        let stopped = a.stop();
        assert!(!stopped.has_crash(), "[{mpm}]");
    }
}
