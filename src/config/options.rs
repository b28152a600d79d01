//! `name=value` options as mod_wsgi's `wsgi_parse_option` reads them, plus the shared helpers
//! for checking option names ("did you mean ...?") and numeric values.
//!
//! An option is a name running up to `=` (no whitespace inside), then a value read like an
//! Apache word, so `name='a b'` works. Unlike mod_wsgi, `name=` followed by a space gives an
//! empty value instead of swallowing the next option as its value.

use super::ConfigResult;
use super::words::Cursor;

/// One `name=value` option, with quotes already removed from the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawOption {
    pub name: String,
    pub value: String,
}

/// Read every remaining word of `cursor` as a `name=value` option whose name is in `valid`.
/// Errors name the directive, the offending text, and what to write instead.
pub(crate) fn parse_options(
    directive: &str,
    cursor: &mut Cursor<'_>,
    valid: &[&str],
) -> ConfigResult<Vec<RawOption>> {
    let mut out = Vec::new();
    while !cursor.is_empty() {
        let (name, stop) = cursor.take_until(&['=']);
        if stop != Some('=') {
            return Err(not_an_option(directive, name, cursor, valid));
        }
        cursor.skip_char();
        if name.is_empty() {
            let value = cursor.word_here();
            return Err(format!(
                "{directive}: '={}' has no option name; write name=value, e.g. {}=...",
                value.text,
                valid.first().copied().unwrap_or("name")
            ));
        }
        let value = cursor.word_here();
        if value.unterminated {
            return Err(format!(
                "{directive}: the value of option '{name}' opens a quote that is never closed; add the closing quote"
            ));
        }
        if !valid.contains(&name) {
            return Err(unknown_option(
                directive,
                &format!("{name}={}", value.text),
                name,
                valid,
            ));
        }
        out.push(RawOption {
            name: name.to_string(),
            value: value.text,
        });
    }
    Ok(out)
}

/// The error for a word that has no `=`.
fn not_an_option(directive: &str, word: &str, cursor: &mut Cursor<'_>, valid: &[&str]) -> String {
    if word.is_empty() {
        // A stray quote or similar at the start of a word: show what follows.
        let text = cursor.next_word().map(|w| w.text).unwrap_or_default();
        return format!(
            "{directive}: unexpected argument '{text}'; options are written name=value with no spaces around '='"
        );
    }
    if valid.contains(&word) {
        let next = cursor.rest();
        let hint = match next.strip_prefix('=') {
            Some(after) => after
                .trim_start()
                .split_ascii_whitespace()
                .next()
                .unwrap_or("VALUE")
                .to_string(),
            None => next
                .split_ascii_whitespace()
                .next()
                .filter(|w| !w.contains('='))
                .unwrap_or("VALUE")
                .to_string(),
        };
        return format!(
            "{directive}: option '{word}' has no value; write it as {word}={hint} with no spaces around '='"
        );
    }
    let mut msg =
        format!("{directive}: unexpected argument '{word}'; options are written name=value");
    if let Some(s) = suggest(word, valid) {
        msg.push_str(&format!(" (did you mean '{s}=...'?)"));
    } else {
        msg.push_str(&format!(", one of: {}", valid.join(", ")));
    }
    msg
}

/// The error for an option whose name is not in `valid`; `shown` is the option as written.
pub(crate) fn unknown_option(directive: &str, shown: &str, name: &str, valid: &[&str]) -> String {
    match suggest(name, valid) {
        Some(s) if valid.len() > 8 => {
            format!("{directive}: unknown option '{shown}'; did you mean '{s}'?")
        }
        Some(s) => format!(
            "{directive}: unknown option '{shown}'; did you mean '{s}'? Valid options are {}",
            valid.join(", ")
        ),
        None => format!(
            "{directive}: unknown option '{shown}'; valid options are {}",
            valid.join(", ")
        ),
    }
}

/// The valid name nearest to `name`, if it is near enough to be a likely misspelling.
/// Case and `_` versus `-` differences count as exact matches.
pub(crate) fn suggest<'v>(name: &str, valid: &[&'v str]) -> Option<&'v str> {
    let wanted: String = name.to_ascii_lowercase().replace('_', "-");
    let limit = 2 + wanted.chars().count() / 4;
    valid
        .iter()
        .map(|v| (edit_distance(&wanted, v), *v))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Parse a non-negative whole number for option `name`; `example` is shown in the error.
pub(crate) fn parse_number<T: std::str::FromStr>(
    directive: &str,
    name: &str,
    value: &str,
    example: &str,
) -> ConfigResult<T> {
    if value.is_empty() {
        return Err(format!(
            "{directive}: option '{name}' needs a value; write e.g. {name}={example}"
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{directive}: {name}='{value}' is not a whole number of 0 or more; write e.g. {name}={example}"
        ));
    }
    value.parse::<T>().map_err(|_| {
        format!("{directive}: {name}='{value}' is too large; write e.g. {name}={example}")
    })
}

/// Parse On/Off (case-insensitive) for option `name`.
pub(crate) fn parse_on_off(directive: &str, name: &str, value: &str) -> ConfigResult<bool> {
    if value.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(format!(
            "{directive}: {name}='{value}' is not On or Off; write {name}=On or {name}=Off"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[&str] = &[
        "process-group",
        "application-group",
        "callable-object",
        "pass-authorization",
    ];

    fn parse(raw: &str) -> ConfigResult<Vec<(String, String)>> {
        let mut c = Cursor::new(raw);
        parse_options("WSGIX", &mut c, VALID)
            .map(|v| v.into_iter().map(|o| (o.name, o.value)).collect())
    }

    #[test]
    fn reads_options_with_quoted_values() {
        let got =
            parse(r#"process-group=a application-group="b c"  callable-object='app'"#).unwrap();
        assert_eq!(
            got,
            [
                ("process-group".to_string(), "a".to_string()),
                ("application-group".into(), "b c".into()),
                ("callable-object".into(), "app".into())
            ]
        );
    }

    #[test]
    fn empty_value_does_not_swallow_next_option() {
        let got = parse("process-group= application-group=x").unwrap();
        assert_eq!(got[0], ("process-group".to_string(), String::new()));
        assert_eq!(got[1], ("application-group".to_string(), "x".to_string()));
    }

    #[test]
    fn nothing_is_fine() {
        assert_eq!(parse("   ").unwrap(), []);
    }

    #[test]
    fn unknown_option_lists_valid_ones() {
        let e = parse("foo=bar").unwrap_err();
        assert_eq!(
            e,
            "WSGIX: unknown option 'foo=bar'; valid options are process-group, application-group, callable-object, pass-authorization"
        );
    }

    #[test]
    fn misspelt_option_gets_suggestion() {
        let e = parse("proces-group=x").unwrap_err();
        assert!(e.contains("did you mean 'process-group'?"), "{e}");
        let e = parse("Process_Group=x").unwrap_err();
        assert!(e.contains("did you mean 'process-group'?"), "{e}");
    }

    #[test]
    fn bare_word_is_explained() {
        let e = parse("extra").unwrap_err();
        assert!(
            e.starts_with("WSGIX: unexpected argument 'extra'; options are written name=value"),
            "{e}"
        );
    }

    #[test]
    fn spaces_around_equals_are_explained() {
        let e = parse("process-group = x").unwrap_err();
        assert_eq!(
            e,
            "WSGIX: option 'process-group' has no value; write it as process-group=x with no spaces around '='"
        );
        let e = parse("process-group x").unwrap_err();
        assert!(e.contains("write it as process-group=x"), "{e}");
    }

    #[test]
    fn missing_name() {
        let e = parse("=x").unwrap_err();
        assert!(e.contains("'=x' has no option name"), "{e}");
    }

    #[test]
    fn unterminated_quote() {
        let e = parse("process-group='abc").unwrap_err();
        assert!(e.contains("never closed"), "{e}");
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("thread", "threads"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestion_threshold() {
        let valid = ["threads", "processes", "maximum-requests", "home", "user"];
        assert_eq!(suggest("thread", &valid), Some("threads"));
        assert_eq!(suggest("max-requests", &valid), Some("maximum-requests"));
        assert_eq!(suggest("usr", &valid), Some("user"));
        assert_eq!(suggest("completely-different", &valid), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number::<u32>("D", "threads", "15", "5"), Ok(15));
        assert!(
            parse_number::<u32>("D", "threads", "", "5")
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse_number::<u32>("D", "threads", "-1", "5")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(
            parse_number::<u32>("D", "threads", "5s", "5")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(
            parse_number::<u32>("D", "threads", "99999999999", "5")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn on_off() {
        assert_eq!(parse_on_off("D", "x", "ON"), Ok(true));
        assert_eq!(parse_on_off("D", "x", "off"), Ok(false));
        assert_eq!(
            parse_on_off("D", "x", "yes").unwrap_err(),
            "D: x='yes' is not On or Off; write x=On or x=Off"
        );
    }
}
