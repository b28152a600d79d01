//! Directive handlers: C callbacks that turn Apache's arguments into `crate::config` values.
//!
//! Each handler only converts strings and stores results; all parsing and validation lives in the
//! pure `crate::config` module. An error string goes back to Apache, which reports it with the
//! file and line of the directive and refuses to start.

use std::ffi::{CStr, c_char, c_void};

use super::cfg::{self, with_global};
use super::ffi;
use crate::config::{self as conf, DirSettings};

/// Turns an error message into a pool string for Apache (null = success).
unsafe fn result(cmd: *mut ffi::cmd_parms, r: Result<(), String>) -> *const c_char {
    match r {
        Ok(()) => std::ptr::null(),
        // SAFETY: cmd and its pool are live while the directive is processed.
        Err(msg) => unsafe { ffi::apr_pstrmemdup((*cmd).pool, msg.as_ptr().cast(), msg.len()) },
    }
}

/// Runs `f`, catching panics so that none crosses into Apache.
fn guarded(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    super::boundary::no_panic(f, |_| Err(format!("{}: internal error while reading this directive", crate::codes::INTERNAL_PANIC)))
}

unsafe fn arg_str<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        return "";
    }
    // SAFETY: Apache passes NUL-terminated argument strings that live for the config pass.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}

unsafe fn directive_name<'a>(cmd: *mut ffi::cmd_parms) -> &'a str {
    // SAFETY: cmd->cmd points at our command_rec, whose name is a static C string.
    unsafe { arg_str((*(*cmd).cmd).name) }
}

/// Refuses a server-only directive inside <Directory>, <Location>, <Files>, <Proxy> or <Limit>.
unsafe fn server_scope_only(cmd: *mut ffi::cmd_parms) -> Result<(), String> {
    // SAFETY: cmd is live; ap_check_cmd_context only reads it.
    let err = unsafe { ffi::ap_check_cmd_context(cmd, ffi::NOT_IN_DIR_CONTEXT as u32) };
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: cmd is the live cmd_parms of this directive call.
    let name = unsafe { directive_name(cmd) };
    Err(format!(
        "{name} cannot be used inside <Directory>, <Location>, <Files>, <Proxy> or <Limit>: move it to the server level or directly into the <VirtualHost>"
    ))
}

/// Refuses a directive outside the main server configuration.
unsafe fn main_config_only(cmd: *mut ffi::cmd_parms) -> Result<(), String> {
    // SAFETY: cmd is live; ap_check_cmd_context only reads it.
    let err = unsafe { ffi::ap_check_cmd_context(cmd, ffi::GLOBAL_ONLY as u32) };
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: cmd is the live cmd_parms of this directive call.
    let name = unsafe { directive_name(cmd) };
    Err(format!("{name} can only be used in the main server configuration, not inside <VirtualHost> or a section: move it to the top level"))
}

pub unsafe extern "C" fn script_alias(cmd: *mut ffi::cmd_parms, _m: *mut c_void, args: *const c_char) -> *const c_char {
    // SAFETY: Apache passes a live cmd_parms and a NUL-terminated argument string.
    unsafe {
        let raw = arg_str(args);
        let is_match = directive_name(cmd).ends_with("Match");
        let r = guarded(|| {
            server_scope_only(cmd)?;
            let alias = if is_match { conf::parse_script_alias_match(raw)? } else { conf::parse_script_alias(raw)? };
            let mut regex = std::ptr::null_mut();
            if alias.regex {
                let pat = super::request_io::cstring(&alias.url);
                regex = ffi::ap_pregcomp((*cmd).pool, pat.as_ptr(), ffi::AP_REG_EXTENDED);
                if regex.is_null() {
                    return Err(format!("WSGIScriptAliasMatch: the regular expression '{}' does not compile; check its syntax", alias.url));
                }
            }
            let s = cfg::server_cfg_mut((*cmd).server);
            s.settings.aliases.push(alias);
            s.regexes.push(regex);
            Ok(())
        });
        result(cmd, r)
    }
}

pub unsafe extern "C" fn daemon_process(cmd: *mut ffi::cmd_parms, _m: *mut c_void, args: *const c_char) -> *const c_char {
    // SAFETY: as script_alias.
    unsafe {
        let raw = arg_str(args);
        let r = guarded(|| {
            server_scope_only(cmd)?;
            let d = conf::parse_daemon_process(raw)?;
            let s = cfg::server_cfg_mut((*cmd).server);
            if s.settings.daemons.iter().any(|x| x.name == d.name) {
                return Err(format!("WSGIDaemonProcess: the name '{}' is already used by another daemon process group; names must be unique", d.name));
            }
            with_global(|g| {
                for o in &d.unimplemented {
                    g.unimplemented.push(format!("WSGIDaemonProcess option '{o}' (group '{}') has no effect here: {}", d.name, conf::unimplemented_reason(o)));
                }
            });
            s.settings.daemons.push(d);
            Ok(())
        });
        result(cmd, r)
    }
}

/// A per-directory setting: parse `arg` and store it with `set`.
unsafe fn dir_setting(
    cmd: *mut ffi::cmd_parms,
    m: *mut c_void,
    arg: *const c_char,
    set: impl FnOnce(&mut DirSettings, &str, &str) -> Result<(), String>,
) -> *const c_char {
    // SAFETY: for directory-context directives Apache passes our DirSettings record as `m`.
    unsafe {
        let name = directive_name(cmd);
        let value = arg_str(arg);
        let r = guarded(|| set(&mut *(m as *mut DirSettings), name, value));
        result(cmd, r)
    }
}

// The four handlers below: Apache calls them with the live cmd_parms of the directive, our
// DirSettings record as `m` (directory-context directives) and a NUL-terminated argument, which is
// what dir_setting needs.
pub unsafe extern "C" fn process_group(cmd: *mut ffi::cmd_parms, m: *mut c_void, arg: *const c_char) -> *const c_char {
    // SAFETY: Apache's arguments, as said above these handlers.
    unsafe { dir_setting(cmd, m, arg, |d, _, v| {
        d.process_group = Some(conf::parse_process_group(v)?);
        Ok(())
    }) }
}

pub unsafe extern "C" fn application_group(cmd: *mut ffi::cmd_parms, m: *mut c_void, arg: *const c_char) -> *const c_char {
    // SAFETY: Apache's arguments, as said above these handlers.
    unsafe { dir_setting(cmd, m, arg, |d, _, v| {
        d.application_group = Some(conf::parse_application_group(v)?);
        Ok(())
    }) }
}

pub unsafe extern "C" fn trusted_proxy_headers(cmd: *mut ffi::cmd_parms, m: *mut c_void, arg: *const c_char) -> *const c_char {
    // SAFETY: Apache's arguments, as said above these handlers.
    unsafe {
        dir_setting(cmd, m, arg, |d, _, v| {
            d.trusted_proxy_headers.get_or_insert_with(Vec::new).extend(conf::proxy::parse_trusted_proxy_headers(v)?);
            Ok(())
        })
    }
}

pub unsafe extern "C" fn trusted_proxies(cmd: *mut ffi::cmd_parms, m: *mut c_void, arg: *const c_char) -> *const c_char {
    // SAFETY: Apache's arguments, as said above these handlers.
    unsafe {
        dir_setting(cmd, m, arg, |d, _, v| {
            let more = conf::proxy::parse_trusted_proxies(v)?;
            match &mut d.trusted_proxies {
                Some(list) => list.extend(more),
                None => d.trusted_proxies = Some(more),
            }
            Ok(())
        })
    }
}

pub unsafe extern "C" fn restrict_process(cmd: *mut ffi::cmd_parms, m: *mut c_void, args: *const c_char) -> *const c_char {
    // SAFETY: Apache's arguments, as said above these handlers.
    unsafe { dir_setting(cmd, m, args, |d, _, v| {
        d.restrict_process = Some(conf::parse_restrict_process(v)?);
        Ok(())
    }) }
}

pub unsafe extern "C" fn callable_object(cmd: *mut ffi::cmd_parms, m: *mut c_void, arg: *const c_char) -> *const c_char {
    // SAFETY: Apache's arguments, as said above these handlers.
    unsafe { dir_setting(cmd, m, arg, |d, _, v| {
        d.callable_object = Some(conf::parse_callable_object(v)?);
        Ok(())
    }) }
}

pub unsafe extern "C" fn flag_setting(cmd: *mut ffi::cmd_parms, m: *mut c_void, arg: *const c_char) -> *const c_char {
    // SAFETY: Apache's arguments, as said above these handlers.
    unsafe {
        dir_setting(cmd, m, arg, |d, name, v| {
            if name == "WSGIMapHEADToGET" {
                d.map_head_to_get = Some(conf::parse_map_head_to_get(v)?);
                return Ok(());
            }
            let on = conf::parse_flag(name, v)?;
            let slot = match name {
                "WSGIPassAuthorization" => &mut d.pass_authorization,
                "WSGIScriptReloading" => &mut d.script_reloading,
                "WSGIChunkedRequest" => &mut d.chunked_request,
                "WSGIEnableSendfile" => &mut d.enable_sendfile,
                "WSGIErrorOverride" => &mut d.error_override,
                other => return Err(format!("{other}: not a per-directory flag (internal error)")),
            };
            *slot = Some(on);
            Ok(())
        })
    }
}

/// WSGIAccessScript, WSGIAuthUserScript, WSGIAuthGroupScript and WSGIDispatchScript: a script
/// whose functions Apache's request phases call in this child's interpreters.
pub unsafe extern "C" fn hook_script(cmd: *mut ffi::cmd_parms, m: *mut c_void, args: *const c_char) -> *const c_char {
    // SAFETY: Apache's arguments, as said above `process_group`.
    unsafe {
        dir_setting(cmd, m, args, |d, name, v| {
            let script = conf::parse_hook_script(name, v)?;
            let slot = match name {
                "WSGIAccessScript" => &mut d.access_script,
                "WSGIAuthUserScript" => &mut d.auth_user_script,
                "WSGIAuthGroupScript" => &mut d.auth_group_script,
                "WSGIDispatchScript" => &mut d.dispatch_script,
                other => return Err(format!("{other}: not a hook script directive (internal error)")),
            };
            *slot = Some(script);
            with_global(|g| g.python_required = true);
            Ok(())
        })
    }
}

pub unsafe extern "C" fn global_setting(cmd: *mut ffi::cmd_parms, _m: *mut c_void, args: *const c_char) -> *const c_char {
    // SAFETY: as script_alias.
    unsafe {
        let name = directive_name(cmd);
        let raw = arg_str(args);
        let r = guarded(|| {
            main_config_only(cmd)?;
            let words = conf::words(raw);
            let one = || -> Result<String, String> {
                match words.as_slice() {
                    [w] => Ok(w.clone()),
                    _ => Err(format!("{name} takes exactly one argument")),
                }
            };
            with_global(|g| -> Result<(), String> {
                match name {
                    "WSGIPythonHome" => g.python_home = Some(one()?),
                    "WSGIPythonPath" => {
                        g.python_path = one()?.split(':').filter(|s| !s.is_empty()).map(String::from).collect()
                    }
                    "WSGISocketPrefix" => g.socket_prefix = Some(one()?),
                    "WSGIRestrictEmbedded" => g.restrict_embedded = conf::parse_flag(name, &one()?)?,
                    "WSGIServerMetrics" => g.server_metrics = conf::parse_flag(name, &one()?)?,
                    "WSGIRestrictStdin" => g.restrict_stdin = Some(conf::parse_flag(name, &one()?)?),
                    "WSGIRestrictStdout" => g.restrict_stdout = Some(conf::parse_flag(name, &one()?)?),
                    "WSGIPythonOptimize" => g.python.optimize = conf::python::parse_optimize(&one()?)?,
                    "WSGIDontWriteBytecode" => g.python.dont_write_bytecode = conf::parse_flag(name, &one()?)?,
                    "WSGIPythonWarnings" => g.python.warnings.push(conf::python::parse_warnings(&one()?)?),
                    "WSGIPythonHashSeed" => g.python.hash_seed = conf::python::parse_hash_seed(&one()?)?,
                    "WSGISwitchInterval" => g.python.switch_interval = Some(conf::python::parse_switch_interval(name, &one()?)?),
                    "WSGIPythonEggs" => g.python.eggs = Some(one()?),
                    "WSGIRestrictSignal" => g.python.restrict_signal = conf::python::parse_restrict_signal(&one()?)?,
                    _ => return Err(format!("{name}: not a global setting (internal error)")),
                }
                Ok(())
            })
        });
        result(cmd, r)
    }
}

pub unsafe extern "C" fn handler_script(cmd: *mut ffi::cmd_parms, _m: *mut c_void, args: *const c_char) -> *const c_char {
    // SAFETY: as script_alias.
    unsafe {
        let raw = arg_str(args);
        let r = guarded(|| {
            let h = conf::parse_handler_script(raw)?;
            cfg::server_cfg_mut((*cmd).server).settings.handler_scripts.push(h);
            Ok(())
        });
        result(cmd, r)
    }
}

pub unsafe extern "C" fn import_script(cmd: *mut ffi::cmd_parms, _m: *mut c_void, args: *const c_char) -> *const c_char {
    // SAFETY: as script_alias.
    unsafe {
        let raw = arg_str(args);
        let r = guarded(|| {
            server_scope_only(cmd)?;
            let imp = conf::parse_import_script(raw)?;
            with_global(|g| g.imports.push(imp));
            Ok(())
        });
        result(cmd, r)
    }
}

/// Directives accepted so that existing configurations load, without effect here: each one used
/// is named once in a startup warning with the reason (the command's data).
pub unsafe extern "C" fn accepted(cmd: *mut ffi::cmd_parms, _m: *mut c_void, _args: *const c_char) -> *const c_char {
    // SAFETY: as script_alias; `info` is the command's data, a static C string.
    unsafe {
        let name = format!("{} has no effect here: {}", directive_name(cmd), arg_str((*cmd).info as *const c_char));
        with_global(|g| {
            if !g.unimplemented.contains(&name) {
                g.unimplemented.push(name);
            }
        });
    }
    std::ptr::null()
}
