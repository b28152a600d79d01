//! Directive parsing and configuration merging, in plain Rust (no Apache or Python calls).
//!
//! The Apache directive callbacks hand the raw argument text to the `parse_*` functions here
//! and store the results; the request handler merges them with [`DirSettings::merge`],
//! [`ServerSettings::merge`] and [`effective`], finds the mount with [`find_mount`] and names
//! the interpreter with [`application_group_name`].
//!
//! Errors are one sentence: what is wrong, then what to write instead, e.g.
//! `WSGIScriptAlias: the script path 'app.wsgi' is not absolute; give the full path, e.g.
//! /srv/www/app.wsgi`. Apache adds the file and line itself.
//!
//! Files, one concern each:
//! - `words`   — Apache's `ap_getword_conf` word splitting;
//! - `options` — `name=value` options, "did you mean" suggestions, number checks;
//! - `flags`   — On/Off directives and WSGIMapHEADToGET;
//! - `groups`  — process/application group values and their per-request names;
//! - `alias`   — WSGIScriptAlias(Match), WSGIImportScript and the hook script directives;
//! - `daemon`  — WSGIDaemonProcess;
//! - `merge`   — directory/server settings, merging, effective per-request settings;
//! - `mount`   — matching a request URI against the aliases;
//! - `proxy`   — WSGITrustedProxyHeaders / WSGITrustedProxies and the CGI rewriting they drive;
//! - `python`  — interpreter settings (WSGIPythonOptimize, WSGIPythonHashSeed, WSGIRestrictSignal, ...).

mod alias;
mod daemon;
mod flags;
mod groups;
mod merge;
mod mount;
mod options;
pub mod proxy;
pub mod python;
mod words;

/// The result of parsing one directive: the error is the message Apache shows.
pub type ConfigResult<T> = Result<T, String>;

pub use alias::{
    ALIAS_OPTIONS, HandlerScript, HookScript, ImportScript, MountOptions, ScriptAlias, parse_handler_script, parse_hook_script,
    parse_import_script, parse_script_alias, parse_script_alias_match,
};
pub use daemon::{
    DAEMON_OPTIONS, DaemonProcess, MAX_THREADS, UNIMPLEMENTED_OPTIONS, parse_daemon_process,
    unimplemented_reason,
};
pub use flags::{MapHeadToGet, parse_flag, parse_map_head_to_get};
pub use groups::{
    GroupContext, GroupSpec, application_group_name, fixed_group_name, parse_application_group,
    parse_callable_object, parse_process_group, parse_restrict_process, process_group_name, resolve_callable_object,
    resolve_group_name,
};
pub use merge::{DirSettings, Effective, ServerSettings, effective};
pub use mount::{collapse_slashes, find_mount, match_mount};
pub use proxy::{
    CgiVars, IpRange, ProxyCategory, ProxyHeader, ProxyOutcome, TrustedProxies,
    parse_trusted_proxies, parse_trusted_proxy_headers, process_proxy_headers,
};
pub use python::PythonSettings;
pub use words::words;
