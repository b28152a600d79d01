//! WSGIScriptAlias URL matching: which mount a request URI belongs to, and where SCRIPT_NAME
//! ends and PATH_INFO begins.

use super::alias::ScriptAlias;

/// mod_wsgi's alias match: the URL prefix `url` matches `uri` if the uri starts with it, where
/// runs of '/' in either count as one, and the match ends at the end of the uri or at a '/'.
/// Returns the byte length of the matched part of `uri` (so SCRIPT_NAME = `&uri[..n]`,
/// PATH_INFO = `&uri[n..]`). For url "/" returns `Some(0)` for every uri starting with '/'
/// (SCRIPT_NAME "" and PATH_INFO the whole uri).
pub fn match_mount(url: &str, uri: &[u8]) -> Option<usize> {
    let url = url.as_bytes();
    if url.is_empty() || uri.first() != Some(&b'/') {
        return None;
    }
    if url.iter().all(|&b| b == b'/') {
        return Some(0);
    }
    let (mut a, mut u) = (0, 0);
    while a < url.len() {
        if url[a] == b'/' {
            // Any number of '/' in the alias matches any number (at least one) in the uri.
            if uri.get(u) != Some(&b'/') {
                return None;
            }
            while a < url.len() && url[a] == b'/' {
                a += 1;
            }
            while u < uri.len() && uri[u] == b'/' {
                u += 1;
            }
        } else {
            if uri.get(u) != Some(&url[a]) {
                return None;
            }
            a += 1;
            u += 1;
        }
    }
    // The last alias component must match a whole uri component.
    if url[url.len() - 1] != b'/' && u < uri.len() && uri[u] != b'/' {
        return None;
    }
    Some(u)
}

/// First alias that matches, in order. Regex aliases are skipped here (the Apache side
/// handles them). Returns the alias and the length of SCRIPT_NAME within `uri`.
pub fn find_mount<'a>(aliases: &'a [ScriptAlias], uri: &[u8]) -> Option<(&'a ScriptAlias, usize)> {
    aliases
        .iter()
        .filter(|a| !a.regex)
        .find_map(|a| match_mount(&a.url, uri).map(|n| (a, n)))
}

/// Runs of `/` collapsed to one, as mod_wsgi does for SCRIPT_NAME and PATH_INFO (Apache's
/// `MergeSlashes Off` lets them through). `None` when there is nothing to collapse.
pub fn collapse_slashes(path: &[u8]) -> Option<Vec<u8>> {
    if !path.windows(2).any(|w| w == b"//") {
        return None;
    }
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if b == b'/' && out.last() == Some(&b'/') {
            continue;
        }
        out.push(b);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn duplicate_slashes_collapse() {
        use super::collapse_slashes as c;
        assert_eq!(c(b"/a/b"), None);
        assert_eq!(c(b""), None);
        assert_eq!(c(b"/a//b").as_deref(), Some(&b"/a/b"[..]));
        assert_eq!(c(b"//a///b////c").as_deref(), Some(&b"/a/b/c"[..]));
        assert_eq!(c(b"/a//").as_deref(), Some(&b"/a/"[..]));
        assert_eq!(c(b"//").as_deref(), Some(&b"/"[..]));
    }

    use super::*;
    use crate::config::alias::MountOptions;

    fn split<'u>(url: &str, uri: &'u str) -> Option<(&'u str, &'u str)> {
        match_mount(url, uri.as_bytes()).map(|n| (&uri[..n], &uri[n..]))
    }

    #[test]
    fn exact_and_prefix() {
        assert_eq!(match_mount("/myapp", b"/myapp"), Some(6));
        assert_eq!(match_mount("/myapp", b"/myapp/x"), Some(6));
        assert_eq!(split("/myapp", "/myapp/x/y"), Some(("/myapp", "/x/y")));
        assert_eq!(split("/myapp", "/myapp/"), Some(("/myapp", "/")));
    }

    #[test]
    fn component_must_end() {
        assert_eq!(match_mount("/myapp", b"/myappx"), None);
        assert_eq!(match_mount("/myapp", b"/myap"), None);
        assert_eq!(match_mount("/myapp", b"/other"), None);
        assert_eq!(match_mount("/a/b", b"/a/bc"), None);
    }

    #[test]
    fn runs_of_slashes_count_as_one() {
        assert_eq!(split("/myapp", "//myapp//x"), Some(("//myapp", "//x")));
        assert_eq!(split("/a/b", "/a///b/c"), Some(("/a///b", "/c")));
        assert_eq!(split("//a", "/a/c"), Some(("/a", "/c")));
        assert_eq!(match_mount("/a/b", b"/ab"), None);
    }

    #[test]
    fn root_mount() {
        assert_eq!(match_mount("/", b"/anything"), Some(0));
        assert_eq!(match_mount("/", b"/"), Some(0));
        assert_eq!(match_mount("/", b"//x"), Some(0));
        assert_eq!(split("/", "/a/b"), Some(("", "/a/b")));
    }

    #[test]
    fn uri_must_start_with_slash() {
        assert_eq!(match_mount("/", b""), None);
        assert_eq!(match_mount("/", b"*"), None);
        assert_eq!(match_mount("/myapp", b"myapp"), None);
        assert_eq!(match_mount("", b"/x"), None);
    }

    #[test]
    fn case_sensitive_and_bytes() {
        assert_eq!(match_mount("/App", b"/app"), None);
        assert_eq!(
            match_mount("/caf\u{e9}", "/caf\u{e9}/x".as_bytes()),
            Some(6)
        );
        assert_eq!(match_mount("/a", b"/a/\xff"), Some(2));
    }

    #[test]
    fn trailing_slash_alias_matches_continuation() {
        // Not produced by parse_script_alias, but handled like mod_wsgi.
        assert_eq!(match_mount("/a/", b"/a/b"), Some(3));
        assert_eq!(match_mount("/a/", b"/a"), None);
    }

    fn alias(url: &str, regex: bool) -> ScriptAlias {
        ScriptAlias {
            url: url.into(),
            target: format!("/srv{url}.wsgi"),
            regex,
            options: MountOptions::default(),
        }
    }

    #[test]
    fn first_match_in_order_skipping_regex() {
        let aliases = [
            alias("^/.*", true),
            alias("/app/admin", false),
            alias("/app", false),
            alias("/", false),
        ];
        let (a, n) = find_mount(&aliases, b"/app/admin/x").unwrap();
        assert_eq!((a.url.as_str(), n), ("/app/admin", 10));
        let (a, n) = find_mount(&aliases, b"/app/other").unwrap();
        assert_eq!((a.url.as_str(), n), ("/app", 4));
        let (a, n) = find_mount(&aliases, b"/elsewhere").unwrap();
        assert_eq!((a.url.as_str(), n), ("/", 0));
        assert!(find_mount(&aliases[..3], b"/elsewhere").is_none());
        assert!(find_mount(&[], b"/x").is_none());
        // Order decides, not length: an earlier shorter prefix wins.
        let aliases = [alias("/app", false), alias("/app/admin", false)];
        assert_eq!(find_mount(&aliases, b"/app/admin").unwrap().0.url, "/app");
    }
}
