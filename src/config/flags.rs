//! On/Off directives (WSGIPassAuthorization, WSGIScriptReloading, ...) and WSGIMapHEADToGET.

use super::ConfigResult;

/// Parse `On` or `Off` (any case) for `directive`.
pub fn parse_flag(directive: &str, arg: &str) -> ConfigResult<bool> {
    let arg = arg.trim();
    if arg.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(format!(
            "{directive}: '{arg}' is not On or Off; write {directive} On or {directive} Off"
        ))
    }
}

/// WSGIMapHEADToGET: whether a HEAD request is shown to the application as GET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapHeadToGet {
    /// Always map HEAD to GET.
    On,
    /// Never map.
    Off,
    /// Map only when an Apache output filter may need the full body (mod_wsgi's default).
    Auto,
}

/// Parse `On`, `Off` or `Auto` (any case) for WSGIMapHEADToGET.
pub fn parse_map_head_to_get(arg: &str) -> ConfigResult<MapHeadToGet> {
    let arg = arg.trim();
    if arg.eq_ignore_ascii_case("on") {
        Ok(MapHeadToGet::On)
    } else if arg.eq_ignore_ascii_case("off") {
        Ok(MapHeadToGet::Off)
    } else if arg.eq_ignore_ascii_case("auto") {
        Ok(MapHeadToGet::Auto)
    } else {
        Err(format!(
            "WSGIMapHEADToGET: '{arg}' is not On, Off or Auto; write e.g. WSGIMapHEADToGET Auto"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_any_case() {
        for on in ["On", "on", "ON", "oN", " On "] {
            assert_eq!(parse_flag("WSGIChunkedRequest", on), Ok(true), "{on}");
        }
        for off in ["Off", "off", "OFF"] {
            assert_eq!(parse_flag("WSGIChunkedRequest", off), Ok(false), "{off}");
        }
    }

    #[test]
    fn bad_flag_names_directive_and_value() {
        assert_eq!(
            parse_flag("WSGIPassAuthorization", "yes").unwrap_err(),
            "WSGIPassAuthorization: 'yes' is not On or Off; write WSGIPassAuthorization On or WSGIPassAuthorization Off"
        );
        assert!(parse_flag("WSGIPassAuthorization", "").is_err());
        assert!(parse_flag("WSGIPassAuthorization", "1").is_err());
        assert!(parse_flag("WSGIPassAuthorization", "true").is_err());
    }

    #[test]
    fn map_head_to_get() {
        assert_eq!(parse_map_head_to_get("on"), Ok(MapHeadToGet::On));
        assert_eq!(parse_map_head_to_get("OFF"), Ok(MapHeadToGet::Off));
        assert_eq!(parse_map_head_to_get("Auto"), Ok(MapHeadToGet::Auto));
        let e = parse_map_head_to_get("sometimes").unwrap_err();
        assert!(
            e.starts_with("WSGIMapHEADToGET: 'sometimes' is not On, Off or Auto"),
            "{e}"
        );
    }
}
