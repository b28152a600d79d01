//! WSGIScriptAlias, WSGIScriptAliasMatch and the script directives that take
//! `process-group=` / `application-group=` options (WSGIImportScript, WSGIDispatchScript,
//! WSGIAccessScript, WSGIAuthUserScript, WSGIAuthGroupScript).

use super::ConfigResult;
use super::groups::{GroupSpec, parse_callable, parse_group};
use super::options::{RawOption, parse_on_off, parse_options};
use super::words::Cursor;

/// Per-mount options that may appear on WSGIScriptAlias / WSGIScriptAliasMatch / WSGIImportScript.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    pub process_group: Option<GroupSpec>,
    pub application_group: Option<GroupSpec>,
    /// As written: a Python identifier or `%{ENV:variable}`.
    pub callable_object: Option<String>,
    pub pass_authorization: Option<bool>,
}

/// One WSGIScriptAlias or WSGIScriptAliasMatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptAlias {
    /// The URL prefix: `"/"`, a path without trailing slash, or one with a trailing slash when
    /// the target is a folder written with one too. For the regex form, the
    /// regular expression as written (Apache compiles it).
    pub url: String,
    /// Absolute path of the script or directory; for the regex form it may contain `$1`..`$9`.
    pub target: String,
    /// True for WSGIScriptAliasMatch.
    pub regex: bool,
    pub options: MountOptions,
}

/// The options WSGIScriptAlias and WSGIScriptAliasMatch accept.
pub const ALIAS_OPTIONS: &[&str] = &[
    "process-group",
    "application-group",
    "callable-object",
    "pass-authorization",
];

/// WSGIScriptAlias URL-path /abs/path [process-group=..] [application-group=..]
/// [callable-object=..] [pass-authorization=On|Off]
pub fn parse_script_alias(raw: &str) -> ConfigResult<ScriptAlias> {
    parse_alias("WSGIScriptAlias", raw, false)
}

/// WSGIScriptAliasMatch regex /abs/path [options]: the regex is not checked here (Apache
/// compiles it); the target may contain `$1`..`$9`.
pub fn parse_script_alias_match(raw: &str) -> ConfigResult<ScriptAlias> {
    parse_alias("WSGIScriptAliasMatch", raw, true)
}

fn parse_alias(directive: &str, raw: &str, regex: bool) -> ConfigResult<ScriptAlias> {
    let example = if regex {
        "WSGIScriptAliasMatch ^/app/([^/]+) /srv/www/$1.wsgi"
    } else {
        "WSGIScriptAlias /myapp /srv/www/app.wsgi"
    };
    let mut cursor = Cursor::new(raw);
    let url = required_word(
        directive,
        &mut cursor,
        "a URL path and a script path",
        example,
    )?;
    let target = required_word(
        directive,
        &mut cursor,
        "a script path after the URL path",
        example,
    )?;

    if url.is_empty() {
        return Err(format!(
            "{directive}: the URL path is empty; write e.g. {example}"
        ));
    }
    if !regex {
        check_url(directive, &url, &target)?;
    }
    check_absolute(
        directive,
        &target,
        if regex {
            "/srv/www/$1.wsgi"
        } else {
            "/srv/www/app.wsgi"
        },
    )?;

    let options = mount_options(
        directive,
        parse_options(directive, &mut cursor, ALIAS_OPTIONS)?,
    )?;
    Ok(ScriptAlias {
        url,
        target,
        regex,
        options,
    })
}

/// Take the next word, or explain what is missing.
fn required_word(
    directive: &str,
    cursor: &mut Cursor<'_>,
    missing: &str,
    example: &str,
) -> ConfigResult<String> {
    match cursor.next_word() {
        Some(w) if w.unterminated => Err(format!(
            "{directive}: '{}' opens a quote that is never closed; add the closing quote",
            w.text
        )),
        Some(w) => Ok(w.text),
        None => Err(format!(
            "{directive}: needs {missing}; write e.g. {example}"
        )),
    }
}

fn check_url(directive: &str, url: &str, target: &str) -> ConfigResult<()> {
    if !url.starts_with('/') {
        return Err(format!(
            "{directive}: the URL path '{url}' does not start with '/'; write it as /{url}"
        ));
    }
    // A trailing '/' on both maps a URL folder onto a folder of scripts.
    if url.len() > 1 && url.ends_with('/') && !target.ends_with('/') {
        let trimmed = url.trim_end_matches('/');
        let fixed = if trimmed.is_empty() { "/" } else { trimmed };
        return Err(format!(
            "{directive}: the URL path '{url}' ends with '/'; remove the trailing slash: {directive} {fixed} {target}"
        ));
    }
    Ok(())
}

fn check_absolute(directive: &str, path: &str, example: &str) -> ConfigResult<()> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "{directive}: the script path '{path}' is not absolute; give the full path, e.g. {example}"
        ))
    }
}

/// Turn alias options into [`MountOptions`], validating each value.
fn mount_options(directive: &str, options: Vec<RawOption>) -> ConfigResult<MountOptions> {
    let mut out = MountOptions::default();
    for RawOption { name, value } in options {
        let what = format!("{directive} {name}");
        match name.as_str() {
            "process-group" => {
                if value.is_empty() {
                    return Err(format!(
                        "{directive}: process-group= needs a value; give a WSGIDaemonProcess name, or %{{GLOBAL}} for embedded mode"
                    ));
                }
                out.process_group = Some(parse_group(&what, &value)?);
            }
            "application-group" => {
                if value.is_empty() {
                    return Err(format!(
                        "{directive}: application-group= needs a value; give a name, or %{{GLOBAL}} for the main interpreter"
                    ));
                }
                out.application_group = Some(parse_group(&what, &value)?);
            }
            "callable-object" => out.callable_object = Some(parse_callable(&what, &value)?),
            "pass-authorization" => {
                out.pass_authorization = Some(parse_on_off(directive, &name, &value)?)
            }
            _ => unreachable!("parse_options only returns names from the valid list"),
        }
    }
    Ok(out)
}

/// WSGIImportScript /abs/path process-group=NAME application-group=NAME: a script loaded
/// when the process (embedded, or the named daemon group) starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportScript {
    pub script: String,
    pub process_group: GroupSpec,
    pub application_group: GroupSpec,
}

/// Parse WSGIImportScript. Both groups are required (as in mod_wsgi) and must be fixed
/// names or `%{GLOBAL}`: there is no request to resolve anything else against.
pub fn parse_import_script(raw: &str) -> ConfigResult<ImportScript> {
    const D: &str = "WSGIImportScript";
    const EXAMPLE: &str =
        "WSGIImportScript /srv/www/app.wsgi process-group=myapp application-group=%{GLOBAL}";
    let mut cursor = Cursor::new(raw);
    let script = required_word(
        D,
        &mut cursor,
        "a script path and process-group= and application-group= options",
        EXAMPLE,
    )?;
    check_absolute(D, &script, "/srv/www/app.wsgi")?;
    let options = mount_options(
        D,
        parse_options(D, &mut cursor, &["process-group", "application-group"])?,
    )?;
    let fixed = |spec: Option<GroupSpec>, option: &str| -> ConfigResult<GroupSpec> {
        match spec {
            None => Err(format!(
                "{D}: the {option}= option is required; write e.g. {EXAMPLE}"
            )),
            Some(s @ (GroupSpec::Global | GroupSpec::Named(_))) => Ok(s),
            Some(s) => Err(format!(
                "{D}: {option}={} cannot be used here, as the script is loaded before any request; give a fixed name or %{{GLOBAL}}",
                s.as_config()
            )),
        }
    };
    Ok(ImportScript {
        script,
        process_group: fixed(options.process_group, "process-group")?,
        application_group: fixed(options.application_group, "application-group")?,
    })
}

/// A hook script directive: `DIRECTIVE /abs/path [application-group=NAME]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookScript {
    pub script: String,
    pub application_group: Option<GroupSpec>,
}

/// Parse WSGIDispatchScript, WSGIAccessScript, WSGIAuthUserScript or WSGIAuthGroupScript
/// (`directive` names which, for messages).
pub fn parse_hook_script(directive: &str, raw: &str) -> ConfigResult<HookScript> {
    let example = format!("{directive} /srv/www/hooks.wsgi application-group=%{{GLOBAL}}");
    let mut cursor = Cursor::new(raw);
    let script = required_word(directive, &mut cursor, "a script path", &example)?;
    check_absolute(directive, &script, "/srv/www/hooks.wsgi")?;
    let options = mount_options(
        directive,
        parse_options(directive, &mut cursor, &["application-group"])?,
    )?;
    Ok(HookScript {
        script,
        application_group: options.application_group,
    })
}

/// WSGIHandlerScript NAME /abs/path [options]: requests whose Apache handler is NAME (from
/// `SetHandler NAME` / `AddHandler NAME .ext`) are served by the script's `handle_request` (or
/// `callable-object=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerScript {
    pub name: String,
    pub script: String,
    pub options: MountOptions,
}

/// Parse WSGIHandlerScript (the same options as WSGIScriptAlias).
pub fn parse_handler_script(raw: &str) -> ConfigResult<HandlerScript> {
    const D: &str = "WSGIHandlerScript";
    const EXAMPLE: &str = "WSGIHandlerScript my-handler /srv/www/handler.wsgi process-group=myapp";
    let mut cursor = Cursor::new(raw);
    let name = required_word(D, &mut cursor, "a handler name and a script path", EXAMPLE)?;
    let script = required_word(D, &mut cursor, "a script path after the handler name", EXAMPLE)?;
    check_absolute(D, &script, "/srv/www/handler.wsgi")?;
    let options = mount_options(D, parse_options(D, &mut cursor, ALIAS_OPTIONS)?)?;
    Ok(HandlerScript { name, script, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(url: &str, target: &str) -> ScriptAlias {
        ScriptAlias {
            url: url.into(),
            target: target.into(),
            regex: false,
            options: MountOptions::default(),
        }
    }

    #[test]
    fn handler_script() {
        let h = parse_handler_script("wsgi-handler /srv/h.wsgi process-group=g application-group=%{GLOBAL}").unwrap();
        assert_eq!(h.name, "wsgi-handler");
        assert_eq!(h.script, "/srv/h.wsgi");
        assert_eq!(h.options.process_group, Some(GroupSpec::Named("g".into())));
        assert_eq!(h.options.application_group, Some(GroupSpec::Global));
        assert!(parse_handler_script("wsgi-handler").unwrap_err().contains("WSGIHandlerScript"));
        assert!(parse_handler_script("h relative.wsgi").unwrap_err().contains("absolute"));
        assert!(parse_handler_script("h /srv/h.wsgi bogus=1").is_err());
    }

    #[test]
    fn simple_alias() {
        assert_eq!(
            parse_script_alias("/myapp /srv/www/app.wsgi"),
            Ok(alias("/myapp", "/srv/www/app.wsgi"))
        );
        assert_eq!(
            parse_script_alias("/ /srv/www/app.wsgi"),
            Ok(alias("/", "/srv/www/app.wsgi"))
        );
        assert_eq!(
            parse_script_alias(r#"  "/my app"   '/srv/my www/app.wsgi'  "#),
            Ok(alias("/my app", "/srv/my www/app.wsgi"))
        );
    }

    #[test]
    fn alias_with_all_options() {
        let a = parse_script_alias(
            "/app /srv/app.wsgi process-group=app application-group=%{GLOBAL} callable-object=wsgi_app pass-authorization=on",
        )
        .unwrap();
        assert_eq!(
            a.options,
            MountOptions {
                process_group: Some(GroupSpec::Named("app".into())),
                application_group: Some(GroupSpec::Global),
                callable_object: Some("wsgi_app".into()),
                pass_authorization: Some(true),
            }
        );
        let a = parse_script_alias(
            "/app /srv/app.wsgi process-group='%{ENV:PG}' pass-authorization=Off",
        )
        .unwrap();
        assert_eq!(a.options.process_group, Some(GroupSpec::Env("PG".into())));
        assert_eq!(a.options.pass_authorization, Some(false));
    }

    #[test]
    fn argument_count() {
        let e = parse_script_alias("").unwrap_err();
        assert_eq!(
            e,
            "WSGIScriptAlias: needs a URL path and a script path; write e.g. WSGIScriptAlias /myapp /srv/www/app.wsgi"
        );
        let e = parse_script_alias("/myapp").unwrap_err();
        assert!(
            e.starts_with("WSGIScriptAlias: needs a script path after the URL path"),
            "{e}"
        );
    }

    #[test]
    fn relative_target() {
        assert_eq!(
            parse_script_alias("/myapp app.wsgi").unwrap_err(),
            "WSGIScriptAlias: the script path 'app.wsgi' is not absolute; give the full path, e.g. /srv/www/app.wsgi"
        );
    }

    #[test]
    fn folder_mounts() {
        assert_eq!(parse_script_alias("/wsgi/ /srv/wsgi/scripts/"), Ok(alias("/wsgi/", "/srv/wsgi/scripts/")));
        assert_eq!(parse_script_alias("/wsgi /srv/wsgi/scripts"), Ok(alias("/wsgi", "/srv/wsgi/scripts")));
        assert_eq!(parse_script_alias("/wsgi /srv/wsgi/scripts/"), Ok(alias("/wsgi", "/srv/wsgi/scripts/")));
    }

    #[test]
    fn url_checks() {
        assert_eq!(
            parse_script_alias("myapp /srv/app.wsgi").unwrap_err(),
            "WSGIScriptAlias: the URL path 'myapp' does not start with '/'; write it as /myapp"
        );
        assert_eq!(
            parse_script_alias("/myapp/ /srv/app.wsgi").unwrap_err(),
            "WSGIScriptAlias: the URL path '/myapp/' ends with '/'; remove the trailing slash: WSGIScriptAlias /myapp /srv/app.wsgi"
        );
        assert!(
            parse_script_alias("// /srv/app.wsgi")
                .unwrap_err()
                .contains("WSGIScriptAlias / /srv/app.wsgi")
        );
        assert!(
            parse_script_alias("'' /srv/app.wsgi")
                .unwrap_err()
                .contains("URL path is empty")
        );
    }

    #[test]
    fn unknown_and_bad_options() {
        assert_eq!(
            parse_script_alias("/a /srv/a.wsgi foo=bar").unwrap_err(),
            "WSGIScriptAlias: unknown option 'foo=bar'; valid options are process-group, application-group, callable-object, pass-authorization"
        );
        let e = parse_script_alias("/a /srv/a.wsgi pass-authorization=yes").unwrap_err();
        assert_eq!(
            e,
            "WSGIScriptAlias: pass-authorization='yes' is not On or Off; write pass-authorization=On or pass-authorization=Off"
        );
        let e = parse_script_alias("/a /srv/a.wsgi process-group=").unwrap_err();
        assert!(e.contains("process-group= needs a value"), "{e}");
        let e = parse_script_alias("/a /srv/a.wsgi application-group=").unwrap_err();
        assert!(e.contains("application-group= needs a value"), "{e}");
        let e = parse_script_alias("/a /srv/a.wsgi callable-object=not-valid").unwrap_err();
        assert!(
            e.starts_with(
                "WSGIScriptAlias callable-object: 'not-valid' is not a Python identifier"
            ),
            "{e}"
        );
        let e = parse_script_alias("/a /srv/a.wsgi process-group=%{BAD}").unwrap_err();
        assert!(e.contains("unknown substitution '%{BAD}'"), "{e}");
        let e = parse_script_alias("/a /srv/a.wsgi extra").unwrap_err();
        assert!(e.contains("unexpected argument 'extra'"), "{e}");
    }

    #[test]
    fn unterminated_quote_in_path() {
        let e = parse_script_alias("/a '/srv/a.wsgi").unwrap_err();
        assert!(e.contains("never closed"), "{e}");
    }

    #[test]
    fn alias_match() {
        let a = parse_script_alias_match("^/app/([^/]+) /srv/www/$1.wsgi process-group=%{GLOBAL}")
            .unwrap();
        assert!(a.regex);
        assert_eq!(a.url, "^/app/([^/]+)");
        assert_eq!(a.target, "/srv/www/$1.wsgi");
        assert_eq!(a.options.process_group, Some(GroupSpec::Global));
        // No URL checks for the regex form.
        assert!(parse_script_alias_match("(.*)/ /srv/x.wsgi").is_ok());
        let e = parse_script_alias_match("^/x $1.wsgi").unwrap_err();
        assert!(
            e.starts_with("WSGIScriptAliasMatch: the script path '$1.wsgi' is not absolute"),
            "{e}"
        );
    }

    #[test]
    fn import_script() {
        let s = parse_import_script("/srv/app.wsgi process-group=app application-group=%{GLOBAL}")
            .unwrap();
        assert_eq!(
            s,
            ImportScript {
                script: "/srv/app.wsgi".into(),
                process_group: GroupSpec::Named("app".into()),
                application_group: GroupSpec::Global
            }
        );
        let e = parse_import_script("/srv/app.wsgi application-group=%{GLOBAL}").unwrap_err();
        assert!(
            e.starts_with("WSGIImportScript: the process-group= option is required"),
            "{e}"
        );
        let e = parse_import_script("/srv/app.wsgi process-group=%{GLOBAL}").unwrap_err();
        assert!(
            e.starts_with("WSGIImportScript: the application-group= option is required"),
            "{e}"
        );
        let e = parse_import_script(
            "/srv/app.wsgi process-group=%{GLOBAL} application-group=%{RESOURCE}",
        )
        .unwrap_err();
        assert!(e.contains("cannot be used here"), "{e}");
        let e = parse_import_script(
            "/srv/app.wsgi process-group=a application-group=b callable-object=x",
        )
        .unwrap_err();
        assert!(e.contains("unknown option 'callable-object=x'"), "{e}");
        assert!(
            parse_import_script("")
                .unwrap_err()
                .starts_with("WSGIImportScript: needs a script path")
        );
        assert!(
            parse_import_script("app.wsgi process-group=a application-group=b")
                .unwrap_err()
                .contains("not absolute")
        );
    }

    #[test]
    fn hook_scripts() {
        let h = parse_hook_script("WSGIAccessScript", "/srv/access.wsgi").unwrap();
        assert_eq!(
            h,
            HookScript {
                script: "/srv/access.wsgi".into(),
                application_group: None
            }
        );
        let h = parse_hook_script(
            "WSGIDispatchScript",
            "/srv/d.wsgi application-group=%{GLOBAL}",
        )
        .unwrap();
        assert_eq!(h.application_group, Some(GroupSpec::Global));
        let e = parse_hook_script("WSGIAuthUserScript", "/srv/a.wsgi process-group=x").unwrap_err();
        assert!(
            e.starts_with("WSGIAuthUserScript: unknown option 'process-group=x'"),
            "{e}"
        );
        assert!(
            parse_hook_script("WSGIAuthGroupScript", "")
                .unwrap_err()
                .starts_with("WSGIAuthGroupScript: needs a script path")
        );
    }
}
