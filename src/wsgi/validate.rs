//! Checks PEP 3333 places on what an application hands to `start_response` (pure Rust).

/// Parses and checks a status line such as `"200 OK"`; returns the numeric code.
///
/// mod_wsgi and PEP 3333 want three digits, a space and a reason phrase, latin-1, without
/// control characters.
pub fn status(line: &str) -> Result<u16, String> {
    if let Some(c) = line.chars().find(|c| (*c as u32) > 0xff) {
        return Err(format!("status line {line:?} has the non-latin-1 character {c:?}"));
    }
    if let Some(c) = line.chars().find(|c| c.is_control()) {
        return Err(format!("status line {line:?} contains the control character {c:?}"));
    }
    let b = line.as_bytes();
    if b.len() < 4 || !b[..3].iter().all(u8::is_ascii_digit) || b[3] != b' ' {
        return Err(format!(
            "status line {line:?} is not of the form 'NNN reason' (three digits, a space, a reason phrase)"
        ));
    }
    let code: u16 = line[..3].parse().map_err(|_| format!("bad status code in {line:?}"))?;
    if !(100..=999).contains(&code) {
        return Err(format!("status code in {line:?} is out of range"));
    }
    Ok(code)
}

/// Checks one response header name.
pub fn header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("response header name is empty".into());
    }
    if let Some(c) = name.chars().find(|c| (*c as u32) > 0xff) {
        return Err(format!("response header name {name:?} has the non-latin-1 character {c:?}"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || *c == ' ' || *c == ':') {
        return Err(format!("response header name {name:?} contains the forbidden character {c:?}"));
    }
    Ok(())
}

/// Checks one response header value.
pub fn header_value(name: &str, value: &str) -> Result<(), String> {
    if let Some(c) = value.chars().find(|c| (*c as u32) > 0xff) {
        return Err(format!("value of response header {name:?} has the non-latin-1 character {c:?}"));
    }
    if value.contains(['\r', '\n']) {
        return Err(format!("value of response header {name:?} contains a CR or LF: {value:?}"));
    }
    if let Some(c) = value.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(format!("value of response header {name:?} contains the control character {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_status() {
        assert_eq!(status("200 OK"), Ok(200));
        assert_eq!(status("404 Not Found"), Ok(404));
        assert_eq!(status("599 x"), Ok(599));
    }

    #[test]
    fn bad_status() {
        assert!(status("200").is_err());
        assert!(status("200OK").is_err());
        assert!(status("abc OK").is_err());
        assert!(status("20 OK").is_err());
        assert!(status("200 O\nK").is_err());
        assert!(status("200 \u{20ac}").is_err());
        assert!(status("099 low").is_err());
    }

    #[test]
    fn header_names() {
        assert!(header_name("Content-Type").is_ok());
        assert!(header_name("X Bad").is_err());
        assert!(header_name("X:Bad").is_err());
        assert!(header_name("").is_err());
        assert!(header_name("X\tA").is_err());
    }

    #[test]
    fn header_values() {
        assert!(header_value("X", "a b\tc").is_ok());
        assert!(header_value("X", "caf\u{e9}").is_ok());
        assert!(header_value("X", "a\r\nSet-Cookie: x").is_err());
        assert!(header_value("X", "\u{20ac}").is_err());
        assert!(header_value("X", "a\x00b").is_err());
    }
}
