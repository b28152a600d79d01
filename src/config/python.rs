//! Interpreter settings from the main server configuration: WSGIPythonOptimize,
//! WSGIDontWriteBytecode, WSGIPythonWarnings, WSGIPythonHashSeed, WSGISwitchInterval,
//! WSGIPythonEggs and WSGIRestrictSignal. They apply to Python in the Apache children and, unless
//! a daemon group's own option says otherwise, in every daemon process.

use super::ConfigResult;
use super::flags::parse_flag;

/// How Python is set up in each process.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonSettings {
    /// `-O` level (`sys.flags.optimize`): 0, 1 or 2.
    pub optimize: u8,
    /// WSGIDontWriteBytecode On: no `.pyc` files are written.
    pub dont_write_bytecode: bool,
    /// `-W` options, in order.
    pub warnings: Vec<String>,
    /// `PYTHONHASHSEED`: `None` random (Python's default), `Some(n)` fixed.
    pub hash_seed: Option<u32>,
    /// `sys.setswitchinterval` in seconds.
    pub switch_interval: Option<f64>,
    /// `PYTHON_EGG_CACHE`.
    pub eggs: Option<String>,
    /// WSGIRestrictSignal (default On): `signal.signal()` registrations are ignored (logged).
    pub restrict_signal: bool,
}

impl Default for PythonSettings {
    fn default() -> Self {
        PythonSettings {
            optimize: 0,
            dont_write_bytecode: false,
            warnings: Vec::new(),
            hash_seed: None,
            switch_interval: None,
            eggs: None,
            restrict_signal: true,
        }
    }
}

/// WSGIPythonOptimize 0|1|2.
pub fn parse_optimize(arg: &str) -> ConfigResult<u8> {
    match arg.trim() {
        "0" => Ok(0),
        "1" => Ok(1),
        "2" => Ok(2),
        other => Err(format!(
            "WSGIPythonOptimize: '{other}' is not 0, 1 or 2; write e.g. WSGIPythonOptimize 1 (as python -O)"
        )),
    }
}

/// WSGIPythonHashSeed random|0..4294967295.
pub fn parse_hash_seed(arg: &str) -> ConfigResult<Option<u32>> {
    let arg = arg.trim();
    if arg.eq_ignore_ascii_case("random") {
        return Ok(None);
    }
    arg.parse::<u32>().map(Some).map_err(|_| {
        format!("WSGIPythonHashSeed: '{arg}' is not 'random' or a number from 0 to 4294967295; write e.g. WSGIPythonHashSeed 0")
    })
}

/// WSGISwitchInterval SECONDS (a positive number, e.g. 0.005).
pub fn parse_switch_interval(directive: &str, arg: &str) -> ConfigResult<f64> {
    let arg = arg.trim();
    match arg.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!(
            "{directive}: '{arg}' is not a positive number of seconds; write e.g. {directive} 0.005"
        )),
    }
}

/// WSGIPythonWarnings ACTION:MESSAGE:CATEGORY:MODULE:LINENO (as `python -W`).
pub fn parse_warnings(arg: &str) -> ConfigResult<String> {
    let arg = arg.trim();
    let action = arg.split(':').next().unwrap_or("");
    const ACTIONS: [&str; 6] = ["default", "error", "ignore", "always", "module", "once"];
    if arg.split(':').count() > 5 || !ACTIONS.iter().any(|a| a.starts_with(action) && !action.is_empty()) {
        return Err(format!(
            "WSGIPythonWarnings: '{arg}' is not a warning filter as python -W takes it; write e.g. WSGIPythonWarnings ignore::DeprecationWarning"
        ));
    }
    Ok(arg.to_string())
}

/// WSGIRestrictSignal On|Off.
pub fn parse_restrict_signal(arg: &str) -> ConfigResult<bool> {
    parse_flag("WSGIRestrictSignal", arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse_optimize("2"), Ok(2));
        assert!(parse_optimize("3").unwrap_err().contains("0, 1 or 2"));
        assert_eq!(parse_hash_seed("Random"), Ok(None));
        assert_eq!(parse_hash_seed("42"), Ok(Some(42)));
        assert!(parse_hash_seed("-1").is_err());
        assert_eq!(parse_switch_interval("WSGISwitchInterval", "0.01"), Ok(0.01));
        assert!(parse_switch_interval("WSGISwitchInterval", "0").is_err());
        assert_eq!(parse_warnings("ignore::DeprecationWarning"), Ok("ignore::DeprecationWarning".into()));
        assert_eq!(parse_warnings("e"), Ok("e".into()));
        assert!(parse_warnings("shout").unwrap_err().contains("python -W"));
        assert!(PythonSettings::default().restrict_signal);
    }
}
