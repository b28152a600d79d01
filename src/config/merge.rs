//! Per-directory and per-server settings, how Apache's config merging combines them, and the
//! effective settings for one request.

use super::alias::{HandlerScript, HookScript, MountOptions, ScriptAlias};
use super::daemon::DaemonProcess;
use super::flags::MapHeadToGet;
use super::groups::GroupSpec;
use super::proxy::{ProxyHeader, TrustedProxies};

/// Settings that may appear at server, virtual host, `<Directory>`/`<Location>` or .htaccess
/// level. `None` means "not set here; inherit".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DirSettings {
    pub process_group: Option<GroupSpec>,
    pub application_group: Option<GroupSpec>,
    /// As written: a Python identifier or `%{ENV:variable}`.
    pub callable_object: Option<String>,
    pub pass_authorization: Option<bool>,
    pub script_reloading: Option<bool>,
    pub chunked_request: Option<bool>,
    pub map_head_to_get: Option<MapHeadToGet>,
    pub enable_sendfile: Option<bool>,
    pub error_override: Option<bool>,
    /// WSGITrustedProxyHeaders (repeats in one context add to the list).
    pub trusted_proxy_headers: Option<Vec<ProxyHeader>>,
    /// WSGITrustedProxies (repeats in one context add to the list).
    pub trusted_proxies: Option<TrustedProxies>,
    /// WSGIAccessScript: `allow_access(environ, host)` decides host access.
    pub access_script: Option<HookScript>,
    /// WSGIAuthUserScript: the authn provider `wsgi` (`check_password`, `get_realm_hash`).
    pub auth_user_script: Option<HookScript>,
    /// WSGIAuthGroupScript: `Require wsgi-group NAME` (`groups_for_user`).
    pub auth_group_script: Option<HookScript>,
    /// WSGIDispatchScript: per-request `process_group`, `application_group`, `callable_object`.
    pub dispatch_script: Option<HookScript>,
    /// WSGIRestrictProcess: the only process groups requests here may run in (`""`: embedded).
    pub restrict_process: Option<Vec<String>>,
}

impl DirSettings {
    /// Apache's merge: every setting of `over` that is set wins, the rest come from `base`.
    pub fn merge(base: &Self, over: &Self) -> Self {
        fn pick<T: Clone>(base: &Option<T>, over: &Option<T>) -> Option<T> {
            over.clone().or_else(|| base.clone())
        }
        DirSettings {
            process_group: pick(&base.process_group, &over.process_group),
            application_group: pick(&base.application_group, &over.application_group),
            callable_object: pick(&base.callable_object, &over.callable_object),
            pass_authorization: pick(&base.pass_authorization, &over.pass_authorization),
            script_reloading: pick(&base.script_reloading, &over.script_reloading),
            chunked_request: pick(&base.chunked_request, &over.chunked_request),
            map_head_to_get: pick(&base.map_head_to_get, &over.map_head_to_get),
            enable_sendfile: pick(&base.enable_sendfile, &over.enable_sendfile),
            error_override: pick(&base.error_override, &over.error_override),
            trusted_proxy_headers: pick(&base.trusted_proxy_headers, &over.trusted_proxy_headers),
            trusted_proxies: pick(&base.trusted_proxies, &over.trusted_proxies),
            access_script: pick(&base.access_script, &over.access_script),
            auth_user_script: pick(&base.auth_user_script, &over.auth_user_script),
            auth_group_script: pick(&base.auth_group_script, &over.auth_group_script),
            dispatch_script: pick(&base.dispatch_script, &over.dispatch_script),
            restrict_process: pick(&base.restrict_process, &over.restrict_process),
        }
    }
}

/// The settings in force for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    pub process_group: GroupSpec,
    pub application_group: GroupSpec,
    /// As written (may be `%{ENV:variable}`; see `resolve_callable_object`).
    pub callable_object: String,
    pub pass_authorization: bool,
    pub script_reloading: bool,
    pub chunked_request: bool,
    pub map_head_to_get: MapHeadToGet,
    pub enable_sendfile: bool,
    pub error_override: bool,
    /// Proxy headers to believe (empty: none) and from which peers (`None`: any).
    pub trusted_proxy_headers: Vec<ProxyHeader>,
    pub trusted_proxies: Option<TrustedProxies>,
}

impl Default for Effective {
    /// mod_wsgi's defaults: embedded mode, one interpreter per resource, callable
    /// `application`, no Authorization header, reloading on, no chunked bodies, HEAD mapped
    /// to GET when needed, no sendfile, no error override.
    fn default() -> Self {
        Effective {
            process_group: GroupSpec::Global,
            application_group: GroupSpec::Resource,
            callable_object: "application".to_string(),
            pass_authorization: false,
            script_reloading: true,
            chunked_request: false,
            map_head_to_get: MapHeadToGet::Auto,
            enable_sendfile: false,
            error_override: false,
            trusted_proxy_headers: Vec::new(),
            trusted_proxies: None,
        }
    }
}

/// The effective per-request settings: the mount's options (from WSGIScriptAlias) win over
/// the merged directory settings, which win over mod_wsgi's defaults.
pub fn effective(dir: &DirSettings, mount: Option<&MountOptions>) -> Effective {
    let defaults = Effective::default();
    let m = mount.cloned().unwrap_or_default();
    Effective {
        process_group: m
            .process_group
            .or_else(|| dir.process_group.clone())
            .unwrap_or(defaults.process_group),
        application_group: m
            .application_group
            .or_else(|| dir.application_group.clone())
            .unwrap_or(defaults.application_group),
        callable_object: m
            .callable_object
            .or_else(|| dir.callable_object.clone())
            .unwrap_or(defaults.callable_object),
        pass_authorization: m
            .pass_authorization
            .or(dir.pass_authorization)
            .unwrap_or(defaults.pass_authorization),
        script_reloading: dir.script_reloading.unwrap_or(defaults.script_reloading),
        chunked_request: dir.chunked_request.unwrap_or(defaults.chunked_request),
        map_head_to_get: dir.map_head_to_get.unwrap_or(defaults.map_head_to_get),
        enable_sendfile: dir.enable_sendfile.unwrap_or(defaults.enable_sendfile),
        error_override: dir.error_override.unwrap_or(defaults.error_override),
        trusted_proxy_headers: dir.trusted_proxy_headers.clone().unwrap_or_default(),
        trusted_proxies: dir.trusted_proxies.clone(),
    }
}

/// Server-level (per VirtualHost) settings: the mounts and daemon groups defined there.
#[derive(Clone, Debug, Default)]
pub struct ServerSettings {
    pub aliases: Vec<ScriptAlias>,
    pub daemons: Vec<DaemonProcess>,
    /// WSGIHandlerScript: named Apache handlers served by a script.
    pub handler_scripts: Vec<HandlerScript>,
}

impl ServerSettings {
    /// Merge a virtual host over the main server: the vhost's aliases first (so they match
    /// first), then the main server's; the same for daemon groups.
    pub fn merge(base: &Self, vhost: &Self) -> Self {
        ServerSettings {
            aliases: vhost.aliases.iter().chain(&base.aliases).cloned().collect(),
            daemons: vhost.daemons.iter().chain(&base.daemons).cloned().collect(),
            handler_scripts: vhost.handler_scripts.iter().chain(&base.handler_scripts).cloned().collect(),
        }
    }

    /// The handler script serving Apache handler `name`, if any.
    pub fn handler_script(&self, name: &[u8]) -> Option<&HandlerScript> {
        self.handler_scripts.iter().find(|h| h.name.as_bytes() == name)
    }

    /// The daemon group called `name`, if defined here.
    pub fn daemon(&self, name: &str) -> Option<&DaemonProcess> {
        self.daemons.iter().find(|d| d.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str) -> GroupSpec {
        GroupSpec::Named(n.to_string())
    }

    #[test]
    fn dir_merge_over_wins_where_set() {
        let base = DirSettings {
            process_group: Some(named("a")),
            application_group: Some(GroupSpec::Global),
            pass_authorization: Some(true),
            script_reloading: Some(false),
            map_head_to_get: Some(MapHeadToGet::Off),
            ..Default::default()
        };
        let over = DirSettings {
            process_group: Some(named("b")),
            pass_authorization: Some(false),
            chunked_request: Some(true),
            error_override: Some(true),
            ..Default::default()
        };
        let m = DirSettings::merge(&base, &over);
        assert_eq!(m.process_group, Some(named("b")));
        assert_eq!(m.application_group, Some(GroupSpec::Global));
        assert_eq!(m.pass_authorization, Some(false));
        assert_eq!(m.script_reloading, Some(false));
        assert_eq!(m.chunked_request, Some(true));
        assert_eq!(m.map_head_to_get, Some(MapHeadToGet::Off));
        assert_eq!(m.enable_sendfile, None);
        assert_eq!(m.error_override, Some(true));
        assert_eq!(m.callable_object, None);
    }

    #[test]
    fn dir_merge_with_empty_is_identity() {
        let s = DirSettings {
            callable_object: Some("app".into()),
            enable_sendfile: Some(true),
            ..Default::default()
        };
        assert_eq!(DirSettings::merge(&s, &DirSettings::default()), s);
        assert_eq!(DirSettings::merge(&DirSettings::default(), &s), s);
    }

    #[test]
    fn effective_defaults() {
        let e = effective(&DirSettings::default(), None);
        assert_eq!(e, Effective::default());
        assert_eq!(e.process_group, GroupSpec::Global);
        assert_eq!(e.application_group, GroupSpec::Resource);
        assert_eq!(e.callable_object, "application");
        assert!(!e.pass_authorization);
        assert!(e.script_reloading);
        assert!(!e.chunked_request);
        assert_eq!(e.map_head_to_get, MapHeadToGet::Auto);
        assert!(!e.enable_sendfile);
        assert!(!e.error_override);
    }

    #[test]
    fn hook_scripts_are_inherited_and_overridden() {
        let script = |p: &str| Some(HookScript { script: p.into(), application_group: None });
        let base = DirSettings { auth_user_script: script("/a.wsgi"), dispatch_script: script("/d.wsgi"), ..DirSettings::default() };
        let over = DirSettings { auth_user_script: script("/b.wsgi"), access_script: script("/c.wsgi"), ..DirSettings::default() };
        let m = DirSettings::merge(&base, &over);
        assert_eq!(m.auth_user_script, script("/b.wsgi"));
        assert_eq!(m.access_script, script("/c.wsgi"));
        assert_eq!(m.dispatch_script, script("/d.wsgi"));
        assert_eq!(m.auth_group_script, None);
    }

    #[test]
    fn mount_options_win_over_directory() {
        let dir = DirSettings {
            process_group: Some(named("dirgroup")),
            application_group: Some(named("dirapp")),
            callable_object: Some("dircall".into()),
            pass_authorization: Some(false),
            script_reloading: Some(false),
            chunked_request: Some(true),
            map_head_to_get: Some(MapHeadToGet::On),
            enable_sendfile: Some(true),
            error_override: Some(true),
            trusted_proxy_headers: None,
            trusted_proxies: None,
            ..DirSettings::default()
        };
        let mount = MountOptions {
            process_group: Some(named("mountgroup")),
            application_group: None,
            callable_object: Some("mountcall".into()),
            pass_authorization: Some(true),
        };
        let e = effective(&dir, Some(&mount));
        assert_eq!(e.process_group, named("mountgroup"));
        assert_eq!(e.application_group, named("dirapp"));
        assert_eq!(e.callable_object, "mountcall");
        assert!(e.pass_authorization);
        assert!(!e.script_reloading);
        assert!(e.chunked_request);
        assert_eq!(e.map_head_to_get, MapHeadToGet::On);
        assert!(e.enable_sendfile);
        assert!(e.error_override);
    }

    fn alias(url: &str) -> ScriptAlias {
        ScriptAlias {
            url: url.into(),
            target: "/srv/x.wsgi".into(),
            regex: false,
            options: MountOptions::default(),
        }
    }

    #[test]
    fn server_merge_puts_vhost_first() {
        let base = ServerSettings {
            aliases: vec![alias("/main")],
            daemons: vec![DaemonProcess::with_defaults("main")],
            handler_scripts: vec![HandlerScript { name: "h".into(), script: "/main.wsgi".into(), options: MountOptions::default() }],
        };
        let vhost = ServerSettings {
            aliases: vec![alias("/v1"), alias("/v2")],
            daemons: vec![DaemonProcess::with_defaults("vh")],
            handler_scripts: vec![HandlerScript { name: "h".into(), script: "/vh.wsgi".into(), options: MountOptions::default() }],
        };
        let m = ServerSettings::merge(&base, &vhost);
        let urls: Vec<_> = m.aliases.iter().map(|a| a.url.as_str()).collect();
        assert_eq!(urls, ["/v1", "/v2", "/main"]);
        let names: Vec<_> = m.daemons.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["vh", "main"]);
        assert!(m.daemon("main").is_some());
        assert!(m.daemon("nope").is_none());
        // The virtual host's handler script of the same name wins.
        assert_eq!(m.handler_script(b"h").map(|h| h.script.as_str()), Some("/vh.wsgi"));
        assert!(m.handler_script(b"other").is_none());
        let empty = ServerSettings::merge(&ServerSettings::default(), &ServerSettings::default());
        assert!(empty.aliases.is_empty() && empty.daemons.is_empty());
    }
}
