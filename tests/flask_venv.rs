//! A real Flask application in a virtualenv, served by a daemon process group with
//! `python-home=<venv>`, next to a second group of the same Apache without python-home that
//! must not see the venv's packages: two groups, two Python environments.
//!
//! The virtualenv is made once with `/usr/bin/python3 -m venv` + `pip install flask` (from the
//! package index) under `target/itest-venv/` and reused while it still imports flask. If pip
//! fails, the test fails with pip's output: it never skips.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn ensure_venv() -> PathBuf {
    common::venv::flask_venv()
}

const FLASK_PY: &str = r#"
import sys
import flask
from flask import Flask, jsonify

app = Flask(__name__)

@app.route('/')
def index():
    return 'hello from flask'

@app.route('/json')
def json_route():
    return jsonify(message='hi', n=42)

@app.route('/prefix')
def prefix():
    return sys.prefix

@app.route('/flaskfile')
def flaskfile():
    return flask.__file__
"#;

const FLASK_WSGI: &str = r#"
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
from app import app as application
"#;

const PLAIN_WSGI: &str = r#"
import sys

def application(environ, start_response):
    q = environ.get('QUERY_STRING', '')
    if q == 'prefix':
        b = sys.prefix
    else:
        try:
            import flask
            b = 'flask found at %s' % flask.__file__
        except ImportError:
            b = 'no flask'
    b = ('%s|%s' % (b, environ['mod_wsgi.process_group'])).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(b)))])
    return [b]
"#;

#[test]
fn flask_in_a_virtualenv_via_python_home_next_to_a_plain_group() {
    let venv = ensure_venv();
    let venv_s = venv.to_string_lossy().into_owned();
    let a = ApacheBuilder::new()
        .mpm(Mpm::Event)
        .script("app.py", FLASK_PY)
        .script("flask.wsgi", FLASK_WSGI)
        .script("plain.wsgi", PLAIN_WSGI)
        .conf("<Directory {dir}/scripts>\n    Require all granted\n</Directory>")
        .conf(&format!("WSGIDaemonProcess flaskapp processes=1 threads=4 python-home={venv_s}"))
        .conf("WSGIDaemonProcess plain processes=1 threads=2")
        .conf("WSGIScriptAlias /plain {dir}/scripts/plain.wsgi process-group=plain")
        .conf("WSGIScriptAlias / {dir}/scripts/flask.wsgi process-group=flaskapp")
        .start();

    // The first request may wait for the group to start and flask to import.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut r = a.get("/");
    while r.status == 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        r = a.get("/");
    }
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello from flask"),
        "flask app in group 'flaskapp' (python-home={venv_s}): {r}\n--- error.log ---\n{}",
        a.error_log()
    );

    let r = a.get("/json");
    assert_eq!(r.status, 200, "{r}\n{}", a.error_log());
    assert_eq!(r.header("Content-Type"), Some("application/json"), "{r}");
    assert_eq!(r.text().trim_end(), r#"{"message":"hi","n":42}"#, "{r}");

    let r = a.get("/prefix");
    assert_eq!((r.status, r.text()), (200, venv_s.clone()), "sys.prefix in the python-home group: {r}\n{}", a.error_log());
    let r = a.get("/flaskfile");
    assert!(
        r.status == 200 && r.text().starts_with(&format!("{venv_s}/lib/")),
        "flask must come from the venv: {r}"
    );

    // Unknown route: Flask's own 404.
    let r = a.get("/nope");
    assert_eq!(r.status, 404, "{r}");

    // The second group of the same Apache, without python-home: the system Python, no flask.
    let r = a.get("/plain");
    assert_eq!((r.status, r.text().as_str()), (200, "no flask|plain"), "group 'plain' must not see the venv: {r}\n{}", a.error_log());
    let r = a.get("/plain?prefix");
    assert_eq!((r.status, r.text().as_str()), (200, "/usr|plain"), "{r}");

    // And the flask group still works after the plain one was used.
    let r = a.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from flask"), "{r}");

    let st = a.stop();
    assert!(!st.has_crash(), "{}", st.error_log);
}

#[test]
fn a_server_wide_python_home_applies_to_daemon_groups_without_their_own() {
    let venv = ensure_venv();
    let venv_s = venv.to_string_lossy().into_owned();
    let a = ApacheBuilder::new()
        .mpm(Mpm::Event)
        .script("plain.wsgi", PLAIN_WSGI)
        .conf("<Directory {dir}/scripts>\n    Require all granted\n</Directory>")
        .conf(&format!("WSGIPythonHome {venv_s}"))
        .conf("WSGIDaemonProcess inherits processes=1 threads=2")
        .conf("WSGIScriptAlias /daemon {dir}/scripts/plain.wsgi process-group=inherits")
        .conf("WSGIScriptAlias /embedded {dir}/scripts/plain.wsgi")
        .start();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut r = a.get("/daemon?prefix");
    while r.status == 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        r = a.get("/daemon?prefix");
    }
    assert_eq!((r.status, r.text()), (200, format!("{venv_s}|inherits")), "the group without python-home uses WSGIPythonHome: {r}\n{}", a.error_log());
    let r = a.get("/daemon");
    assert!(r.text().starts_with(&format!("flask found at {venv_s}/lib/")), "{r}");
    let r = a.get("/embedded?prefix");
    assert_eq!((r.status, r.text()), (200, format!("{venv_s}|")), "embedded mode too: {r}");
    let st = a.stop();
    assert!(!st.has_crash(), "{}", st.error_log);
}
