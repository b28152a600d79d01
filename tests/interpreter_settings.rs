//! Server-wide interpreter settings, applied to Python in the Apache children and in daemon
//! processes alike: WSGIPythonOptimize, WSGIDontWriteBytecode, WSGIPythonHashSeed,
//! WSGISwitchInterval, WSGIPythonWarnings, WSGIPythonEggs (and a daemon group's python-eggs=
//! over it), and WSGIRestrictSignal (on by default: signal.signal() is ignored and logged).

mod common;

use std::process::Command;
use std::time::Duration;

use common::mode::*;
use common::*;

const APP: &str = r#"
import os, signal, sys, warnings
def application(environ, start_response):
    before = signal.getsignal(signal.SIGUSR1)
    returned = signal.signal(signal.SIGUSR1, lambda *a: None)
    fields = [
        'optimize=%d' % sys.flags.optimize,
        'dont_write_bytecode=%s' % sys.dont_write_bytecode,
        'hash=%d' % hash('mod_wsgi'),
        'switch=%s' % sys.getswitchinterval(),
        'warnoptions=%s' % ','.join(sys.warnoptions),
        'eggs=%s' % os.environ.get('PYTHON_EGG_CACHE'),
        'signal_kept=%s' % (signal.getsignal(signal.SIGUSR1) == before and returned == before),
    ]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return ['\n'.join(fields).encode()]
"#;

const SETTINGS: &str = "WSGIPythonOptimize 2\nWSGIDontWriteBytecode On\nWSGIPythonHashSeed 42\n\
WSGISwitchInterval 0.5\nWSGIPythonWarnings ignore::DeprecationWarning\nWSGIPythonWarnings error::ResourceWarning\n\
WSGIPythonEggs /tmp/server-eggs\n";

mode_suite! {

#[test]
fn interpreter_settings_apply_in_every_process() {
    let out = Command::new("/usr/bin/python3").env("PYTHONHASHSEED", "42").args(["-c", "print(hash('mod_wsgi'))"]).output().expect("/usr/bin/python3");
    let want_hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    for mpm in MODE.mpms() {
        let eggs = match MODE {
            Mode::Embedded => "/tmp/server-eggs",
            Mode::Daemon => "/tmp/group-eggs",
        };
        let a = ApacheBuilder::new()
            .mpm(mpm)
            .conf(SETTINGS)
            .conf(&MODE.preamble_with("processes=1 threads=2 python-eggs=/tmp/group-eggs"))
            .script("app.wsgi", APP)
            .conf("WSGIScriptAlias /s {dir}/scripts/app.wsgi\n<Directory {dir}/scripts>\n Require all granted\n</Directory>\n")
            .start();
        let r = a.get("/s");
        assert_eq!(r.status, 200, "[{mpm}] {r}\n{}", a.error_log());
        let text = r.text();
        for want in [
            "optimize=2".to_string(),
            "dont_write_bytecode=True".to_string(),
            format!("hash={want_hash}"),
            "switch=0.5".to_string(),
            "warnoptions=ignore::DeprecationWarning,error::ResourceWarning".to_string(),
            format!("eggs={eggs}"),
            "signal_kept=True".to_string(),
        ] {
            assert!(text.lines().any(|l| l == want), "[{mpm}] want {want} in:\n{text}");
        }
        assert!(a.wait_log("WR0134: callback registration for signal 10 ignored", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        MODE.stop(a);
    }
}

}

/// A bad value is a configuration error naming the directive and the fix.
#[test]
fn bad_interpreter_settings_are_configuration_errors() {
    for (line, want) in [
        ("WSGIPythonOptimize 3", "WSGIPythonOptimize: '3' is not 0, 1 or 2"),
        ("WSGIPythonHashSeed lots", "WSGIPythonHashSeed: 'lots' is not 'random' or a number"),
        ("WSGISwitchInterval -1", "WSGISwitchInterval: '-1' is not a positive number of seconds"),
        ("WSGIPythonWarnings shout", "WSGIPythonWarnings: 'shout' is not a warning filter"),
        ("WSGIRestrictSignal maybe", "WSGIRestrictSignal: 'maybe' is not On or Off"),
    ] {
        let (ok, out) = Apache::config_test(ApacheBuilder::new().conf(line));
        assert!(!ok, "{line}: accepted\n{out}");
        assert!(out.contains(want), "{line}: {out}");
    }
}

/// Directives of mod_wsgi that cannot apply here load, and the startup warning names each one
/// with the reason (a section of mod_wsgi 6 included).
#[test]
fn directives_without_effect_load_and_say_why() {
    let a = ApacheBuilder::new()
        .conf(
            "WSGIPerInterpreterGIL On\nWSGIAcceptMutex default\n<WSGIInterpreterOptions myapp>\n    WSGIWhatever 1\n</WSGIInterpreterOptions>\n\
             WSGITelemetryService unix:/run/telemetry.sock interval=5\nWSGITelemetryOptions +CaptureUserAgent\nWSGISlowRequests 2\n",
        )
        .start();
    assert!(a.wait_log("WR0117: WSGIPerInterpreterGIL has no effect here: it needs Python 3.12 or later", Duration::from_secs(5)), "{}", a.error_log());
    assert!(a.error_log().contains("WR0117: WSGIAcceptMutex has no effect here: Apache 2.4 chooses its accept mutex itself"), "{}", a.error_log());
    assert!(a.error_log().contains("WR0117: <WSGIInterpreterOptions has no effect here"), "{}", a.error_log());
    for name in ["WSGITelemetryService", "WSGITelemetryOptions", "WSGISlowRequests"] {
        assert!(a.error_log().contains(&format!("WR0117: {name} has no effect here")), "{name}: {}", a.error_log());
    }
    assert!(!a.stop().has_crash());
    // A name mod_wsgi never had is a configuration error.
    let (ok, out) = Apache::config_test(ApacheBuilder::new().conf("WSGIStartupTimeout 5"));
    assert!(!ok && out.contains("WSGIStartupTimeout"), "{out}");
}
