//! Checks PEP 3333 places on what an application hands to `start_response` (pure Rust).

/// Python's `repr()` of a bytes object, as mod_wsgi's messages quote offending values.
pub fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') { b'"' } else { b'\'' };
    let mut out = String::with_capacity(b.len() + 3);
    out.push('b');
    out.push(quote as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(quote as char);
    out
}

/// A str as latin-1 bytes; a character above U+00FF (which `start_response` refuses with
/// UnicodeEncodeError before validating) becomes 0xFF, a byte no check here accepts in a name.
fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| u8::try_from(c as u32).unwrap_or(0xff)).collect()
}

fn non_latin1(what: &str, s: &str) -> Result<(), String> {
    match s.chars().find(|c| (*c as u32) > 0xff) {
        Some(c) => Err(format!("{what} {s:?} has the non-latin-1 character {c:?}")),
        None => Ok(()),
    }
}

/// Parses and checks a status line such as `"200 OK"` (latin-1 text); returns the numeric code.
/// The messages are mod_wsgi's (the application may show them).
pub fn status(line: &str) -> Result<u16, String> {
    non_latin1("status line", line)?;
    let b = latin1(line);
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || b.get(3).is_some_and(u8::is_ascii_digit) {
        return Err(format!("status code must be a 3 digit integer: {}", bytes_repr(&b)));
    }
    if b.get(3) != Some(&b' ') {
        return Err(format!("no space following status code: {}", bytes_repr(&b)));
    }
    if b.iter().any(|c| c.is_ascii_control()) {
        return Err(format!("control character in status reason phrase: {}", bytes_repr(&b)));
    }
    let code: u16 = line[..3].parse().map_err(|_| format!("status code must be a 3 digit integer: {}", bytes_repr(&b)))?;
    if code < 100 {
        return Err(format!("status code must be from 100 to 999: {}", bytes_repr(&b)));
    }
    Ok(code)
}

/// Checks one response header name (latin-1 text).
pub fn header_name(name: &str) -> Result<(), String> {
    non_latin1("header name", name)?;
    let b = latin1(name);
    if b.is_empty() {
        return Err("header name is empty".into());
    }
    if b.contains(&b' ') {
        return Err(format!("space character in header name: {}", bytes_repr(&b)));
    }
    if b.iter().any(|c| c.is_ascii_control() || *c == 0xff) {
        return Err(format!("control character in header name: {}", bytes_repr(&b)));
    }
    if b.contains(&b':') {
        return Err(format!("colon character in header name: {}", bytes_repr(&b)));
    }
    Ok(())
}

/// Checks one response header value (latin-1 text).
pub fn header_value(_name: &str, value: &str) -> Result<(), String> {
    non_latin1("header value", value)?;
    let b = latin1(value);
    if b.iter().any(|c| *c == b'\r' || *c == b'\n') {
        return Err(format!("carriage return/line feed character in header value: {}", bytes_repr(&b)));
    }
    if b.iter().any(|c| c.is_ascii_control() && *c != b'\t') {
        return Err(format!("control character in header value: {}", bytes_repr(&b)));
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
        assert!(status("099 low").is_err());
        assert_eq!(status("OK").unwrap_err(), "status code must be a 3 digit integer: b'OK'");
        assert_eq!(status("20X OK").unwrap_err(), "status code must be a 3 digit integer: b'20X OK'");
        assert_eq!(status("2000 OK").unwrap_err(), "status code must be a 3 digit integer: b'2000 OK'");
        assert_eq!(status("200OK").unwrap_err(), "no space following status code: b'200OK'");
        assert_eq!(status("200 OK\r\nX: y").unwrap_err(), "control character in status reason phrase: b'200 OK\\r\\nX: y'");
    }

    #[test]
    fn reprs_like_python() {
        assert_eq!(bytes_repr(b"a'b"), "b\"a'b\"");
        assert_eq!(bytes_repr(b"a'\"b"), "b'a\\'\"b'");
        assert_eq!(bytes_repr(b"\t\x00\xe9\\"), "b'\\t\\x00\\xe9\\\\'");
    }

    #[test]
    fn header_names() {
        assert!(header_name("Content-Type").is_ok());
        assert!(header_name("X Bad").is_err());
        assert!(header_name("X:Bad").is_err());
        assert!(header_name("").is_err());
        assert!(header_name("X\tA").is_err());
        assert_eq!(header_name("X Foo").unwrap_err(), "space character in header name: b'X Foo'");
        assert_eq!(header_name("X\tFoo").unwrap_err(), "control character in header name: b'X\\tFoo'");
    }

    #[test]
    fn header_values() {
        assert!(header_value("X", "a b\tc").is_ok());
        assert!(header_value("X", "caf\u{e9}").is_ok());
        assert!(header_value("X", "a\r\nSet-Cookie: x").is_err());
        assert!(header_value("X", "a\x00b").is_err());
        assert!(header_value("X", "\u{20ac}").is_err());
        assert!(header_value("X", "\u{10a}").is_err(), "U+010A is not LF in disguise");
        assert_eq!(header_value("X", "1\n2").unwrap_err(), "carriage return/line feed character in header value: b'1\\n2'");
    }
}
