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
    return [('%d' % os.getpid()).encode()]
"#;

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
        let a = b
            .conf(&format!(
                "WSGIDaemonProcess ok threads=2 socket-user={apache_user} send-buffer-size=131072 receive-buffer-size=131072 script-user={owner}\n\
                 WSGIDaemonProcess strict threads=2 script-user=nobody\n\
                 WSGIScriptAlias /ok {{dir}}/scripts/app.wsgi process-group=ok\n\
                 WSGIScriptAlias /strict {{dir}}/scripts/app.wsgi process-group=strict\n\
                 <Directory {{dir}}/scripts>\n Require all granted\n</Directory>\n"
            ))
            .start();
        let r = a.get("/ok");
        assert_eq!(r.status, 200, "[{mpm}] {r}\n{}", a.error_log());
        let r = a.get("/strict");
        assert_eq!(r.status, 403, "[{mpm}] {r}");
        assert!(a.wait_log("WR0136: ", Duration::from_secs(5)), "[{mpm}] {}", a.error_log());
        assert!(a.error_log().contains("script-user= requires uid"), "[{mpm}] {}", a.error_log());
        // None of these options is reported as having no effect.
        for option in ["socket-user", "send-buffer-size", "receive-buffer-size", "script-user"] {
            assert!(!a.error_log().contains(&format!("option '{option}'")), "[{mpm}] {option}: {}", a.error_log());
        }
        let stopped = a.stop();
        assert!(!stopped.has_crash(), "[{mpm}]");
    }
}
