//! Process group, application group and callable object values, and how mod_wsgi turns them
//! into names for one request.
//!
//! The special values are `%{GLOBAL}`, `%{RESOURCE}`, `%{SERVER}`, `%{HOST}` and
//! `%{ENV:variable}`; anything else is a literal name.

use super::ConfigResult;

/// A WSGIProcessGroup / WSGIApplicationGroup value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupSpec {
    /// `%{GLOBAL}` (or an empty value): embedded mode for a process group, the main
    /// interpreter (`''`) for an application group.
    Global,
    /// A literal name.
    Named(String),
    /// `%{ENV:variable}`: the value of a request note, request environment variable or
    /// process environment variable, looked up per request.
    Env(String),
    /// `%{RESOURCE}`: `host[:port]|SCRIPT_NAME`.
    Resource,
    /// `%{SERVER}`: `host[:port]` of the virtual host.
    Server,
    /// `%{HOST}`: `host[:port]` from the request's Host header (ServerName when absent).
    Host,
}

impl GroupSpec {
    /// The value as it would be written in the configuration.
    pub fn as_config(&self) -> String {
        match self {
            GroupSpec::Global => "%{GLOBAL}".into(),
            GroupSpec::Named(n) => n.clone(),
            GroupSpec::Env(v) => format!("%{{ENV:{v}}}"),
            GroupSpec::Resource => "%{RESOURCE}".into(),
            GroupSpec::Server => "%{SERVER}".into(),
            GroupSpec::Host => "%{HOST}".into(),
        }
    }
}

/// Parse a WSGIProcessGroup value: a daemon group name, `%{GLOBAL}` (embedded mode),
/// `%{ENV:variable}`, or `%{RESOURCE}` / `%{SERVER}` / `%{HOST}`.
/// WSGIRestrictProcess NAME...: daemon group names, `%{GLOBAL}` for embedded mode (`""`).
pub fn parse_restrict_process(raw: &str) -> ConfigResult<Vec<String>> {
    let names = super::words(raw);
    if names.is_empty() {
        return Err("WSGIRestrictProcess: needs one or more process group names; write e.g. WSGIRestrictProcess myapp %{GLOBAL}".into());
    }
    Ok(names.into_iter().map(|n| if n == "%{GLOBAL}" { String::new() } else { n }).collect())
}

pub fn parse_process_group(arg: &str) -> ConfigResult<GroupSpec> {
    parse_group("WSGIProcessGroup", arg)
}

/// Parse a WSGIApplicationGroup value: an interpreter name, `%{GLOBAL}` (or `''`) for the
/// main interpreter, `%{RESOURCE}`, `%{SERVER}`, `%{HOST}` or `%{ENV:variable}`.
pub fn parse_application_group(arg: &str) -> ConfigResult<GroupSpec> {
    parse_group("WSGIApplicationGroup", arg)
}

/// Shared parser; `what` names the directive or option in error messages.
pub(crate) fn parse_group(what: &str, arg: &str) -> ConfigResult<GroupSpec> {
    if arg.is_empty() {
        return Ok(GroupSpec::Global);
    }
    let Some(inner) = arg.strip_prefix("%{") else {
        return Ok(GroupSpec::Named(arg.to_string()));
    };
    let Some(inner) = inner.strip_suffix('}') else {
        return Err(format!(
            "{what}: '{arg}' has no closing '}}'; write e.g. %{{GLOBAL}} or %{{ENV:VARIABLE}}"
        ));
    };
    match inner {
        "GLOBAL" => Ok(GroupSpec::Global),
        "RESOURCE" => Ok(GroupSpec::Resource),
        "SERVER" => Ok(GroupSpec::Server),
        "HOST" => Ok(GroupSpec::Host),
        _ => match inner.strip_prefix("ENV:") {
            Some("") => Err(format!(
                "{what}: '{arg}' names no variable; write e.g. %{{ENV:MY_GROUP}}"
            )),
            Some(var) => Ok(GroupSpec::Env(var.to_string())),
            None => Err(format!(
                "{what}: unknown substitution '{arg}'; use %{{GLOBAL}}, %{{RESOURCE}}, %{{SERVER}}, %{{HOST}} or %{{ENV:VARIABLE}}, or a plain name"
            )),
        },
    }
}

/// Check a WSGICallableObject value (or `callable-object=` option): a Python identifier or
/// `%{ENV:variable}`. Returns the value to store as written.
pub fn parse_callable_object(arg: &str) -> ConfigResult<String> {
    parse_callable("WSGICallableObject", arg)
}

pub(crate) fn parse_callable(what: &str, arg: &str) -> ConfigResult<String> {
    if arg.is_empty() {
        return Err(format!(
            "{what}: the callable object name is empty; give a name, e.g. application"
        ));
    }
    if let Some(inner) = arg.strip_prefix("%{") {
        return match inner.strip_prefix("ENV:").and_then(|v| v.strip_suffix('}')) {
            Some(var) if !var.is_empty() => Ok(arg.to_string()),
            _ => Err(format!(
                "{what}: '{arg}' is not a valid substitution; only %{{ENV:VARIABLE}} is allowed here"
            )),
        };
    }
    if !is_identifier(arg) {
        return Err(format!(
            "{what}: '{arg}' is not a Python identifier; give the name of the WSGI callable in the script, e.g. application"
        ));
    }
    Ok(arg.to_string())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => chars.all(|c| c == '_' || c.is_alphanumeric()),
        _ => false,
    }
}

/// Resolve a stored callable object value for one request, as mod_wsgi does:
/// `%{ENV:variable}` looks the variable up (falling back to `application` when unset).
pub fn resolve_callable_object(value: &str, env: impl Fn(&str) -> Option<String>) -> String {
    match value
        .strip_prefix("%{ENV:")
        .and_then(|v| v.strip_suffix('}'))
    {
        Some(var) => env(var).unwrap_or_else(|| "application".to_string()),
        None if value.is_empty() => "application".to_string(),
        None => value.to_string(),
    }
}

/// Facts about one request that group names are built from.
#[derive(Clone, Copy, Debug)]
pub struct GroupContext<'a> {
    /// The virtual host's ServerName.
    pub server_name: &'a str,
    /// The server port (`ap_get_server_port`); 80 and 443 are left out of names.
    pub port: u16,
    /// The host name from the request's Host header, without port; empty or `None` falls back
    /// to `server_name`.
    pub host: Option<&'a str>,
    /// SCRIPT_NAME of the request.
    pub script_name: &'a str,
}

/// Resolve a group value to the name used for one request, as mod_wsgi does (for both
/// process and application groups):
/// - `%{GLOBAL}` → `""`;
/// - `%{RESOURCE}` → `host[:port]|SCRIPT_NAME` (runs of `/` in SCRIPT_NAME collapsed);
/// - `%{SERVER}` → `host[:port]`; `%{HOST}` → Host header name `[:port]`;
/// - `%{ENV:var}` → the variable's value (a value that is itself `%{GLOBAL}`, `%{RESOURCE}`,
///   `%{SERVER}` or `%{HOST}` is resolved in turn); when unset, the literal `%{ENV:var}`.
///
/// The port is left out when it is 80 or 443.
pub fn resolve_group_name(
    spec: &GroupSpec,
    ctx: &GroupContext<'_>,
    env: impl Fn(&str) -> Option<String>,
) -> String {
    match spec {
        GroupSpec::Global => String::new(),
        GroupSpec::Named(n) => n.clone(),
        GroupSpec::Resource => {
            let mut name = with_port(ctx.server_name, ctx.port);
            name.push('|');
            name.push_str(&collapse_slashes(ctx.script_name));
            name
        }
        GroupSpec::Server => with_port(ctx.server_name, ctx.port),
        GroupSpec::Host => {
            let host = ctx
                .host
                .filter(|h| !h.is_empty())
                .unwrap_or(ctx.server_name);
            with_port(host, ctx.port)
        }
        GroupSpec::Env(var) => match env(var) {
            Some(value) => {
                // mod_wsgi resolves one level of substitution in the value, but not another
                // %{ENV:...} (no loops).
                if value.starts_with('%') && !value.starts_with("%{ENV:") {
                    match parse_group("", &value) {
                        Ok(inner) if !matches!(inner, GroupSpec::Env(_)) => {
                            resolve_group_name(&inner, ctx, no_env)
                        }
                        _ => value,
                    }
                } else {
                    value
                }
            }
            None => spec.as_config(),
        },
    }
}

/// Application group name resolution as mod_wsgi does: %{RESOURCE} = "host[:port]|SCRIPT_NAME"
/// (port omitted for 80 and 443), %{SERVER} = "host[:port]", %{GLOBAL} = "", %{HOST} = the
/// host name of the request's Host header, taken from `env("HTTP_HOST")` with any port
/// removed (ServerName when absent). Use [`resolve_group_name`] to pass the host explicitly.
pub fn application_group_name(
    spec: &GroupSpec,
    server_name: &str,
    port: u16,
    script_name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> String {
    let host_header = if matches!(spec, GroupSpec::Host | GroupSpec::Env(_)) {
        env("HTTP_HOST")
    } else {
        None
    };
    let host = host_header
        .as_deref()
        .map(host_without_port)
        .map(str::to_ascii_lowercase);
    let ctx = GroupContext {
        server_name,
        port,
        host: host.as_deref(),
        script_name,
    };
    resolve_group_name(spec, &ctx, env)
}

/// The name of a group fixed in the configuration, with no request to resolve it against (as
/// WSGIImportScript's `application-group=` is): a literal name, or `""` for `%{GLOBAL}`.
pub fn fixed_group_name(spec: &GroupSpec) -> String {
    let ctx = GroupContext { server_name: "", port: 0, host: None, script_name: "" };
    resolve_group_name(spec, &ctx, no_env)
}

/// Process group name resolution; the same rules as [`application_group_name`]
/// (`%{GLOBAL}` → `""`, meaning embedded mode).
pub fn process_group_name(
    spec: &GroupSpec,
    server_name: &str,
    port: u16,
    script_name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> String {
    application_group_name(spec, server_name, port, script_name, env)
}

/// An environment with nothing set (ends `%{ENV:...}` substitution after one level).
fn no_env(_: &str) -> Option<String> {
    None
}

fn with_port(host: &str, port: u16) -> String {
    use std::fmt::Write;
    let mut name = String::with_capacity(host.len() + 6);
    name.push_str(host);
    if port != 80 && port != 443 {
        let _ = write!(name, ":{port}");
    }
    name
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        host.split(':').next().unwrap_or(host)
    }
}

fn collapse_slashes(s: &str) -> String {
    if !s.contains("//") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut last_slash = false;
    for c in s.chars() {
        if c == '/' && last_slash {
            continue;
        }
        last_slash = c == '/';
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_names_carry_the_port_unless_80_or_443() {
        assert_eq!(super::with_port("h", 80), "h");
        assert_eq!(super::with_port("h", 443), "h");
        assert_eq!(super::with_port("h", 0), "h:0");
        assert_eq!(super::with_port("h", 8000), "h:8000");
        assert_eq!(super::with_port("h", 65535), "h:65535");
        assert_eq!(super::collapse_slashes("/a//b///c"), "/a/b/c");
        assert_eq!(super::collapse_slashes("/a/b"), "/a/b");
    }

    #[test]
    fn restrict_process_names() {
        assert_eq!(super::parse_restrict_process("a %{GLOBAL} 'b c'"), Ok(vec!["a".to_string(), String::new(), "b c".to_string()]));
        assert!(super::parse_restrict_process("  ").unwrap_err().contains("WSGIRestrictProcess"));
    }

    use super::*;

    #[test]
    fn parses_special_values() {
        assert_eq!(parse_process_group("%{GLOBAL}"), Ok(GroupSpec::Global));
        assert_eq!(parse_process_group(""), Ok(GroupSpec::Global));
        assert_eq!(
            parse_process_group("myapp"),
            Ok(GroupSpec::Named("myapp".into()))
        );
        assert_eq!(
            parse_process_group("%{ENV:GROUP}"),
            Ok(GroupSpec::Env("GROUP".into()))
        );
        assert_eq!(parse_process_group("%{RESOURCE}"), Ok(GroupSpec::Resource));
        assert_eq!(parse_process_group("%{SERVER}"), Ok(GroupSpec::Server));
        assert_eq!(parse_process_group("%{HOST}"), Ok(GroupSpec::Host));
        assert_eq!(parse_application_group("%{GLOBAL}"), Ok(GroupSpec::Global));
        assert_eq!(fixed_group_name(&GroupSpec::Global), "");
        assert_eq!(fixed_group_name(&GroupSpec::Named("preloaded".into())), "preloaded");
        assert_eq!(parse_application_group(""), Ok(GroupSpec::Global));
        assert_eq!(
            parse_application_group("site|/x"),
            Ok(GroupSpec::Named("site|/x".into()))
        );
    }

    #[test]
    fn bad_substitutions() {
        let e = parse_process_group("%{GLOBL}").unwrap_err();
        assert!(
            e.starts_with("WSGIProcessGroup: unknown substitution '%{GLOBL}'; use %{GLOBAL}"),
            "{e}"
        );
        let e = parse_application_group("%{ENV:}").unwrap_err();
        assert!(
            e.starts_with("WSGIApplicationGroup: '%{ENV:}' names no variable"),
            "{e}"
        );
        let e = parse_application_group("%{GLOBAL").unwrap_err();
        assert!(e.contains("no closing '}'"), "{e}");
        // Case matters, as in mod_wsgi.
        assert!(parse_process_group("%{global}").is_err());
    }

    #[test]
    fn as_config_round_trips() {
        for v in [
            "%{GLOBAL}",
            "name",
            "%{ENV:X}",
            "%{RESOURCE}",
            "%{SERVER}",
            "%{HOST}",
        ] {
            assert_eq!(parse_process_group(v).unwrap().as_config(), v);
        }
    }

    #[test]
    fn resource_server_global_names() {
        let r = application_group_name(&GroupSpec::Resource, "example.com", 80, "/myapp", no_env);
        assert_eq!(r, "example.com|/myapp");
        let r = application_group_name(&GroupSpec::Resource, "example.com", 443, "", no_env);
        assert_eq!(r, "example.com|");
        let r = application_group_name(&GroupSpec::Resource, "example.com", 8080, "/a//b", no_env);
        assert_eq!(r, "example.com:8080|/a/b");
        assert_eq!(
            application_group_name(&GroupSpec::Server, "h", 80, "/x", no_env),
            "h"
        );
        assert_eq!(
            application_group_name(&GroupSpec::Server, "h", 8000, "/x", no_env),
            "h:8000"
        );
        assert_eq!(
            application_group_name(&GroupSpec::Global, "h", 8000, "/x", no_env),
            ""
        );
        assert_eq!(
            application_group_name(&GroupSpec::Named("n".into()), "h", 1, "/x", no_env),
            "n"
        );
    }

    #[test]
    fn host_uses_host_header() {
        let env = |k: &str| (k == "HTTP_HOST").then(|| "WWW.Example.org:8080".to_string());
        assert_eq!(
            application_group_name(&GroupSpec::Host, "srv", 8080, "/", env),
            "www.example.org:8080"
        );
        assert_eq!(
            application_group_name(&GroupSpec::Host, "srv", 80, "/", no_env),
            "srv"
        );
        let env6 = |k: &str| (k == "HTTP_HOST").then(|| "[::1]:8080".to_string());
        assert_eq!(
            application_group_name(&GroupSpec::Host, "srv", 8080, "/", env6),
            "[::1]:8080"
        );
        let ctx = GroupContext {
            server_name: "srv",
            port: 443,
            host: Some(""),
            script_name: "/",
        };
        assert_eq!(resolve_group_name(&GroupSpec::Host, &ctx, no_env), "srv");
    }

    #[test]
    fn env_lookup() {
        let env = |k: &str| match k {
            "APP" => Some("myapp".to_string()),
            "G" => Some("%{GLOBAL}".to_string()),
            "R" => Some("%{RESOURCE}".to_string()),
            "LOOP" => Some("%{ENV:LOOP}".to_string()),
            _ => None,
        };
        let spec = |v: &str| GroupSpec::Env(v.to_string());
        assert_eq!(
            application_group_name(&spec("APP"), "h", 80, "/s", env),
            "myapp"
        );
        assert_eq!(application_group_name(&spec("G"), "h", 80, "/s", env), "");
        assert_eq!(
            application_group_name(&spec("R"), "h", 81, "/s", env),
            "h:81|/s"
        );
        assert_eq!(
            application_group_name(&spec("LOOP"), "h", 80, "/s", env),
            "%{ENV:LOOP}"
        );
        assert_eq!(
            application_group_name(&spec("UNSET"), "h", 80, "/s", env),
            "%{ENV:UNSET}"
        );
        assert_eq!(
            process_group_name(&spec("APP"), "h", 80, "/s", env),
            "myapp"
        );
    }

    #[test]
    fn callable_objects() {
        assert_eq!(
            parse_callable_object("application"),
            Ok("application".into())
        );
        assert_eq!(parse_callable_object("_app2"), Ok("_app2".into()));
        assert_eq!(
            parse_callable_object("%{ENV:CALLABLE}"),
            Ok("%{ENV:CALLABLE}".into())
        );
        assert!(parse_callable_object("").is_err());
        assert!(
            parse_callable_object("my-app")
                .unwrap_err()
                .contains("not a Python identifier")
        );
        assert!(parse_callable_object("2app").is_err());
        assert!(
            parse_callable_object("%{GLOBAL}")
                .unwrap_err()
                .contains("only %{ENV:VARIABLE}")
        );
        assert!(parse_callable_object("%{ENV:}").is_err());
    }

    #[test]
    fn callable_resolution() {
        let env = |k: &str| (k == "C").then(|| "handler".to_string());
        assert_eq!(resolve_callable_object("app", env), "app");
        assert_eq!(resolve_callable_object("%{ENV:C}", env), "handler");
        assert_eq!(resolve_callable_object("%{ENV:D}", env), "application");
        assert_eq!(resolve_callable_object("", env), "application");
    }
}
