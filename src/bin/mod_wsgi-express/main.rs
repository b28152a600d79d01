//! mod_wsgi-express: from a WSGI application to a running Apache in one command.
//!
//! `start-server app.wsgi` checks the application and its environment, writes a server root
//! (httpd.conf, an apachectl script, logs), and runs Debian's Apache in the foreground with
//! this project's module serving the application from a daemon process group (or, with
//! `--embedded-mode`, from Apache's own children). Ctrl-C stops Apache and every process it
//! started. `module-config` and `module-location` tell an existing Apache where the module is.
//!
//! Self-contained on purpose: the module itself is a cdylib that references Apache's symbols,
//! so this program does not link it. It compiles in only the library's safe system-call module
//! (src/sys, which uses nothing else of the crate) and otherwise needs std and libc.

mod args;
mod conf;
mod os;
mod plan;
mod run;
/// The library's safe wrappers of system calls (src/sys), compiled into this program too; it
/// uses a few of them.
#[allow(dead_code)]
#[path = "../../sys/mod.rs"]
mod sys;

use std::io::Write;
use std::process::ExitCode;

use args::Command;

fn prog_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "mod_wsgi-express".into())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let prog = prog_name();
    match real_main(&prog, &argv) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(msg) => {
            err_line(&format!("{prog}: error: {msg}"));
            ExitCode::from(1)
        }
    }
}

/// Writes one line to stderr, ignoring a closed stream.
pub fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Writes to stdout, ignoring a closed pipe (`... | head`).
fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

fn real_main(prog: &str, argv: &[String]) -> Result<i32, String> {
    match args::parse(prog, argv)? {
        Command::Help(Some(cmd)) if cmd == "start-server" || cmd == "setup-server" => {
            out(&args::server_usage(prog, &cmd));
            Ok(0)
        }
        Command::Help(_) => {
            out(&args::usage(prog));
            Ok(if argv.is_empty() { 2 } else { 0 })
        }
        Command::Version => {
            out(&format!("{prog} {}\n", env!("CARGO_PKG_VERSION")));
            Ok(0)
        }
        Command::ModuleLocation => {
            out(&format!("{}\n", plan::find_module()?.display()));
            Ok(0)
        }
        Command::ModuleConfig => {
            let module = plan::find_module()?;
            conf::check_writable_text("the module path", &module.to_string_lossy())?;
            let mut text = format!("LoadModule wsgi_module \"{}\"\n", module.display());
            if let Some(venv) = plan::chosen_venv(None)? {
                let want = plan::module_python_version(&module).unwrap_or_else(|| "3.11".into());
                plan::check_venv(&venv, &want)?;
                conf::check_writable_text("the virtualenv path", &venv.to_string_lossy())?;
                text.push_str(&format!("WSGIPythonHome \"{}\"\n", venv.display()));
            }
            out(&text);
            Ok(0)
        }
        Command::StartServer(opts) | Command::SetupServer(opts) => serve(prog, argv, opts),
    }
}

fn serve(prog: &str, argv: &[String], opts: args::Options) -> Result<i32, String> {
    let setup_only = opts.setup_only;
    let plan = plan::resolve(opts)?;
    for p in paths_written(&plan) {
        conf::check_writable_text("the path", &p)?;
    }
    for w in &plan.warnings {
        err_line(&format!("{prog}: warning: {w}"));
    }
    let command_line = std::iter::once(prog.to_string()).chain(argv.iter().cloned()).collect::<Vec<_>>().join(" ");
    conf::write_server_root(&plan, &command_line.replace('\n', " "))?;

    let o = &plan.opts;
    let mut lines = vec![
        ("Server URL", plan.url.trim_end_matches('/').to_string() + &mount_suffix(&o.mount_point)),
        ("Server Root", plan.server_root.display().to_string()),
        ("Server Conf", conf::httpd_conf_path(&plan).display().to_string()),
        ("Error Log", match &plan.log_directory {
            Some(_) => format!("{} ({})", conf::error_log(&plan), o.log_level),
            None => format!("terminal (stderr, LogLevel {})", o.log_level),
        }),
    ];
    if let Some(a) = conf::access_log(&plan) {
        lines.push(("Access Log", if plan.log_directory.is_some() { a } else { "terminal (stdout)".into() }));
    }
    lines.push(("Control Script", conf::apachectl_path(&plan).display().to_string()));
    lines.push(("Application", plan.app_description()));
    let plural = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let sizing = match (o.embedded_mode, o.mpm) {
        (true, args::Mpm::Prefork) => plural(o.processes.saturating_mul(o.threads), "Apache child", "Apache children"),
        (true, _) => format!("{} x {}", plural(o.processes, "Apache child", "Apache children"), plural(o.threads, "thread", "threads")),
        (false, _) => format!("{} x {}", plural(o.processes, "process", "processes"), plural(o.threads, "thread", "threads")),
    };
    lines.push(("Operating Mode", format!(
        "{} ({sizing}, {} MPM{})",
        if o.embedded_mode { "embedded" } else { "daemon" },
        o.mpm.name(),
        match &plan.run_as {
            Some(ra) => format!(", as {}:{}", ra.user.name, ra.group),
            None => String::new(),
        }
    )));
    lines.push(("Python", match &plan.venv {
        Some(v) => format!("{} (virtualenv {})", plan.python_version, v.display()),
        None => format!("{} ({})", plan.python_version, plan.python.display()),
    }));
    if o.reload_on_changes {
        lines.push(("Reload On Changes", "on".into()));
    }
    lines.push(("Module", plan.module.display().to_string()));
    let mut out = std::io::stdout().lock();
    for (k, v) in &lines {
        let _ = writeln!(out, "{k:<18} : {v}");
    }
    if setup_only {
        let _ = writeln!(out, "Start it with {} foreground (or start / stop).", conf::apachectl_path(&plan).display());
        let _ = out.flush();
        return Ok(0);
    }
    let _ = out.flush();
    drop(out);
    run::run(&plan)
}

fn mount_suffix(mount: &str) -> String {
    if mount == "/" { "/".into() } else { format!("{mount}/") }
}

/// Every path that goes into httpd.conf.
fn paths_written(plan: &plan::Plan) -> Vec<String> {
    let mut v = vec![
        plan.server_root.to_string_lossy().into_owned(),
        plan.script.to_string_lossy().into_owned(),
        plan.working_dir.to_string_lossy().into_owned(),
        plan.module.to_string_lossy().into_owned(),
        plan.opts.mount_point.clone(),
        plan.opts.application_group.clone(),
        plan.locale.clone(),
    ];
    v.extend(plan.python_paths.iter().map(|p| p.to_string_lossy().into_owned()));
    v.extend(plan.venv.iter().map(|p| p.to_string_lossy().into_owned()));
    v.extend(plan.document_root.iter().map(|p| p.to_string_lossy().into_owned()));
    v.extend(plan.log_directory.iter().map(|p| p.to_string_lossy().into_owned()));
    for (u, p, _) in &plan.url_aliases {
        v.push(u.clone());
        v.push(p.to_string_lossy().into_owned());
    }
    if let Some(ra) = &plan.run_as {
        v.push(ra.user.name.clone());
        v.push(ra.group.clone());
    }
    v
}
