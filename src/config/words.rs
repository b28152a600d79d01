//! Splitting raw directive arguments into words, the way Apache's `ap_getword_conf` does.
//!
//! Rules (matching httpd's `server/util.c`):
//! - words are separated by ASCII whitespace;
//! - a word that *starts* with `"` or `'` runs to the matching quote (or the end of the
//!   line); the quotes are removed, and inside it `\` escapes the quote character or `\`;
//! - in an unquoted word `\\` becomes `\` and every other character is kept as written;
//! - a quote in the middle of a word is an ordinary character (`a"b` is one word).

/// Split a raw directive argument string into words like Apache's `ap_getword_conf`:
/// whitespace separated, double or single quotes group words (quotes removed, backslash
/// escapes the quote character inside). An empty quoted word (`''`) yields an empty string.
pub fn words(raw: &str) -> Vec<String> {
    let mut cursor = Cursor::new(raw);
    let mut out = Vec::new();
    while let Some(word) = cursor.next_word() {
        out.push(word.text);
    }
    out
}

/// One word taken from a directive line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Word {
    /// The word with quotes and escapes removed.
    pub text: String,
    /// The word started with a quote that was never closed.
    pub unterminated: bool,
}

/// A read position in a raw directive argument string.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    pub fn new(raw: &'a str) -> Self {
        Cursor { rest: raw }
    }

    /// The unread text with leading whitespace removed.
    pub fn rest(&self) -> &'a str {
        self.rest.trim_start_matches(is_space)
    }

    /// True when only whitespace is left.
    pub fn is_empty(&self) -> bool {
        self.rest().is_empty()
    }

    /// Take the next word, or `None` when only whitespace is left.
    pub fn next_word(&mut self) -> Option<Word> {
        let s = self.rest();
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let (word, used) = take_word(s);
        self.rest = &s[used..];
        Some(word)
    }

    /// Take a word that starts exactly here (no whitespace skipped). When the next character
    /// is whitespace or the end of the line the result is an empty word.
    pub fn word_here(&mut self) -> Word {
        match self.rest.chars().next() {
            None => Word {
                text: String::new(),
                unterminated: false,
            },
            Some(c) if is_space(c) => Word {
                text: String::new(),
                unterminated: false,
            },
            Some(_) => {
                let (word, used) = take_word(self.rest);
                self.rest = &self.rest[used..];
                word
            }
        }
    }

    /// Take the characters up to (not including) the first whitespace or one of `stops`.
    /// Returns the taken text and the character that stopped the scan, if any.
    pub fn take_until(&mut self, stops: &[char]) -> (&'a str, Option<char>) {
        let s = self.rest();
        let end = s
            .find(|c: char| is_space(c) || stops.contains(&c))
            .unwrap_or(s.len());
        let stop = s[end..].chars().next();
        self.rest = &s[end..];
        (&s[..end], stop)
    }

    /// Skip one character (used after `take_until` found its stop character).
    pub fn skip_char(&mut self) {
        let mut chars = self.rest.chars();
        chars.next();
        self.rest = chars.as_str();
    }
}

fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// Read one word from the start of `s` (which does not start with whitespace). Returns the
/// word and the number of bytes consumed (the word, its closing quote if any).
fn take_word(s: &str) -> (Word, usize) {
    let bytes = s.as_bytes();
    let quote = bytes[0];
    if quote == b'"' || quote == b'\'' {
        let mut text = Vec::new();
        let mut i = 1;
        while i < bytes.len() && bytes[i] != quote {
            if bytes[i] == b'\\'
                && i + 1 < bytes.len()
                && (bytes[i + 1] == quote || bytes[i + 1] == b'\\')
            {
                text.push(bytes[i + 1]);
                i += 2;
            } else {
                text.push(bytes[i]);
                i += 1;
            }
        }
        let unterminated = i >= bytes.len();
        let used = if unterminated { i } else { i + 1 };
        (
            Word {
                text: bytes_to_string(text),
                unterminated,
            },
            used,
        )
    } else {
        let end = s.find(is_space).unwrap_or(s.len());
        let raw = &bytes[..end];
        let mut text = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\\' && i + 1 < raw.len() && raw[i + 1] == b'\\' {
                text.push(b'\\');
                i += 2;
            } else {
                text.push(raw[i]);
                i += 1;
            }
        }
        (
            Word {
                text: bytes_to_string(text),
                unterminated: false,
            },
            end,
        )
    }
}

/// The bytes come from a `&str` split only at ASCII characters, so they are valid UTF-8.
fn bytes_to_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(raw: &str) -> Vec<String> {
        words(raw)
    }

    #[test]
    fn plain_words() {
        assert_eq!(w("a b  c"), ["a", "b", "c"]);
        assert_eq!(w("  lead and trail \t"), ["lead", "and", "trail"]);
        assert_eq!(w("tabs\tand\nnewlines"), ["tabs", "and", "newlines"]);
    }

    #[test]
    fn empty_input() {
        assert!(w("").is_empty());
        assert!(w("   \t ").is_empty());
    }

    #[test]
    fn double_and_single_quotes_group() {
        assert_eq!(w(r#""a b" 'c d' e"#), ["a b", "c d", "e"]);
        assert_eq!(
            w(r#"x="a b""#),
            [r#"x="a"#, r#"b""#],
            "quote only counts at word start"
        );
    }

    #[test]
    fn empty_quoted_word_is_kept() {
        assert_eq!(w("'' x"), ["", "x"]);
        assert_eq!(w(r#""""#), [""]);
    }

    #[test]
    fn backslash_escapes_quote_inside_quotes() {
        assert_eq!(w(r#""say \"hi\"""#), [r#"say "hi""#]);
        assert_eq!(w(r"'it\'s'"), ["it's"]);
        assert_eq!(w(r#""a\\b""#), [r"a\b"]);
        // A backslash before another character stays.
        assert_eq!(w(r#""a\nb""#), [r"a\nb"]);
        // The other quote kind is not escaped.
        assert_eq!(w(r#"'a\"b'"#), [r#"a\"b"#]);
    }

    #[test]
    fn unquoted_double_backslash_collapses() {
        assert_eq!(w(r"a\\b c\d"), [r"a\b", r"c\d"]);
    }

    #[test]
    fn quoted_word_ends_at_quote_even_without_space() {
        // ap_getword_conf ends the word at the closing quote; the rest is the next word.
        assert_eq!(w(r#""ab"cd"#), ["ab", "cd"]);
    }

    #[test]
    fn unterminated_quote_runs_to_end() {
        assert_eq!(w(r#"a "b c"#), ["a", "b c"]);
        let mut c = Cursor::new(r#""open"#);
        assert_eq!(
            c.next_word(),
            Some(Word {
                text: "open".into(),
                unterminated: true
            })
        );
        assert_eq!(c.next_word(), None);
    }

    #[test]
    fn non_ascii_is_preserved() {
        assert_eq!(w("ünïcode 'grüße dich'"), ["ünïcode", "grüße dich"]);
    }

    #[test]
    fn cursor_option_scanning() {
        let mut c = Cursor::new("  name='a b' next=1");
        assert_eq!(c.take_until(&['=']), ("name", Some('=')));
        c.skip_char();
        assert_eq!(c.word_here().text, "a b");
        assert_eq!(c.take_until(&['=']), ("next", Some('=')));
        c.skip_char();
        assert_eq!(c.word_here().text, "1");
        assert!(c.is_empty());
    }

    #[test]
    fn word_here_is_empty_before_space() {
        let mut c = Cursor::new(" x");
        assert_eq!(c.word_here().text, "");
        assert_eq!(c.rest(), "x");
    }
}
