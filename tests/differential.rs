//! Differential tests: the same application, configuration and requests against Apache with our
//! module and against Apache with Debian's C mod_wsgi (4.9.4); what the client sees must match.
//!
//! Both servers use the prefork MPM and `WSGIApplicationGroup %{GLOBAL}` (Debian's 4.9.4 hangs at
//! shutdown after destroying sub-interpreters, GrahamDumpleton/mod_wsgi#730).

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};

const APP: &str = r#"
import io, os, sys

CT = ('Content-Type', 'text/plain')

def show(v):
    if v is None or isinstance(v, (str, bool, int, float, tuple)):
        return repr(v)
    return '<%s>' % type(v).__name__

def blob_path(environ):
    return os.path.join(os.path.dirname(environ['SCRIPT_FILENAME']), '..', 'data', 'blob.bin')

def stream(start_response):
    start_response('200 OK', [CT])
    for i in range(5):
        yield ('part%d;' % i).encode()

def big(start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    block = bytes(range(256)) * 16
    for i in range(64):
        yield block

def application(environ, start_response):
    p = environ.get('PATH_INFO', '')
    if p == '/hello':
        body = b'Hello World!'
        start_response('200 OK', [CT, ('Content-Length', str(len(body)))])
        return [body]
    if p == '/query':
        body = ('%s|%s' % (environ['QUERY_STRING'], environ['REQUEST_URI'])).encode()
        start_response('200 OK', [CT])
        return [body]
    if p.startswith('/path'):
        body = ('%r|%r|%r' % (environ['SCRIPT_NAME'], p, environ['REQUEST_URI'])).encode('utf-8')
        start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8')])
        return [body]
    if p == '/echo':
        data = environ['wsgi.input'].read()
        start_response('200 OK', [('Content-Type', environ.get('CONTENT_TYPE', 'application/octet-stream')),
                                  ('X-Method', environ['REQUEST_METHOD']),
                                  ('X-Content-Length', repr(environ.get('CONTENT_LENGTH')))])
        return [data]
    if p == '/cookies':
        start_response('200 OK', [CT, ('Set-Cookie', 'a=1; Path=/'), ('Set-Cookie', 'b=2; HttpOnly'),
                                  ('X-Multi', 'x'), ('X-Multi', 'y')])
        return [b'cookies']
    if p == '/stream':
        return stream(start_response)
    if p == '/big':
        return big(start_response)
    if p == '/notfound':
        start_response('404 Not Found', [CT])
        return [b'no such thing']
    if p == '/empty':
        start_response('200 OK', [CT])
        return []
    if p == '/emptycl':
        start_response('200 OK', [CT, ('Content-Length', '0')])
        return [b'']
    if p == '/file':
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return environ['wsgi.file_wrapper'](open(blob_path(environ), 'rb'))
    if p == '/filecl':
        f = open(blob_path(environ), 'rb')
        f.seek(100)
        start_response('200 OK', [('Content-Type', 'application/octet-stream'), ('Content-Length', '1000')])
        return environ['wsgi.file_wrapper'](f, 256)
    if p == '/bytesio':
        with open(blob_path(environ), 'rb') as f:
            data = f.read()
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return environ['wsgi.file_wrapper'](io.BytesIO(data), 4096)
    if p == '/write':
        write = start_response('200 OK', [CT])
        write(b'written;')
        write(b'more;')
        return [b'returned']
    if p == '/redirect':
        start_response('302 Found', [CT, ('Location', 'http://localhost/elsewhere')])
        return [b'moved']
    if p == '/latin1':
        start_response('200 OK', [CT, ('X-Latin', 'caf\xe9')])
        return [b'latin1']
    if p == '/status':
        start_response('299 Custom Reason', [CT])
        return [b'custom']
    if p == '/exc':
        raise ValueError('differential-boom')
    if p.startswith('/environ'):
        lines = ['%s\t%s' % (k, show(v)) for k, v in sorted(environ.items())]
        start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8')])
        return [('\n'.join(lines) + '\n').encode('utf-8')]
    start_response('400 Bad Request', [CT])
    return [b'unknown path']
"#;

const CONF: &str = "\
WSGIApplicationGroup %{GLOBAL}
WSGIChunkedRequest On
WSGIScriptAlias /missing {dir}/scripts/nope.wsgi
WSGIScriptAlias /app {dir}/scripts/app.wsgi
<Directory {dir}/scripts>
    Require all granted
</Directory>
";

fn blob() -> Vec<u8> {
    (0..100 * 1024u32).map(|i| ((i * 13 + i / 512) % 253) as u8).collect()
}

fn start(module: Option<&str>) -> Apache {
    let mut b = ApacheBuilder::new()
        .mpm(Mpm::Prefork)
        .script("app.wsgi", APP)
        .file("data/blob.bin", blob())
        .conf(CONF);
    if let Some(m) = module {
        b = b.module(m);
    }
    b.start()
}

/// What is compared: status line, headers (minus per-server ones, as a sorted multiset) and body.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    version: String,
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: String,
    complete: bool,
}

const IGNORED_HEADERS: [&str; 4] = ["date", "server", "keep-alive", "connection"];

fn seen(r: &Response) -> Seen {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| !IGNORED_HEADERS.contains(&k.as_str()))
        .collect();
    headers.sort();
    let body = if r.body.len() > 512 || r.body.contains(&0) {
        // Big/binary bodies: length plus a simple checksum keeps the diff readable.
        let sum = r.body.iter().enumerate().fold(0u64, |acc, (i, b)| {
            acc.wrapping_mul(31).wrapping_add(*b as u64 ^ (i as u64 & 0xff))
        });
        format!("<{} bytes, sum {sum:x}>", r.body.len())
    } else {
        r.text()
    };
    Seen {
        version: r.version.clone(),
        status: r.status,
        reason: r.reason.clone(),
        headers,
        body,
        complete: r.complete,
    }
}

/// How the response framing of the two modules is expected to compare.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Same,
    /// Deliberate improvement: the application returned a list (a complete body). mod_wsgi
    /// flushes after every item, so Apache cannot know the length and chunks the response; we
    /// pass the items without flushing, so Apache's content-length filter sets Content-Length
    /// (better for clients, and keep-alive works for HTTP/1.0 too). Everything else must match.
    OursLength,
}

fn requests() -> Vec<(&'static str, Vec<u8>, Framing)> {
    use Framing::*;
    let big: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 241) as u8).collect();
    let close = ("Connection", "close");
    let mut chunked_put = http_request(
        "PUT",
        "/app/echo",
        &[("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain"), close],
        b"",
    );
    chunked_put.extend(chunked(b"chunked request body, in pieces", 5));
    let get = |path: &str| http_request("GET", path, &[close], b"");
    vec![
        ("get hello", get("/app/hello"), Same),
        ("query string", get("/app/query?x=1&y=%20z&empty=&u=caf%C3%A9"), OursLength),
        ("percent-encoded path", get("/app/path/a%20b/caf%C3%A9/%2541"), OursLength),
        (
            "post form",
            http_request(
                "POST",
                "/app/echo",
                &[("Content-Type", "application/x-www-form-urlencoded"), close],
                b"a=1&b=two+words",
            ),
            OursLength,
        ),
        ("post empty", http_request("POST", "/app/echo", &[("Content-Type", "text/plain"), close], b""), Same),
        (
            "post 256 KiB",
            http_request("POST", "/app/echo", &[("Content-Type", "application/octet-stream"), close], &big),
            Same,
        ),
        ("chunked put", chunked_put, OursLength),
        ("head hello", http_request("HEAD", "/app/hello", &[close], b""), Same),
        ("head stream", http_request("HEAD", "/app/stream", &[close], b""), Same),
        ("set-cookie x2", get("/app/cookies"), OursLength),
        ("streaming generator", get("/app/stream"), Same),
        ("http/1.0 generator", b"GET /app/stream HTTP/1.0\r\nHost: localhost\r\n\r\n".to_vec(), Same),
        ("404 from app", get("/app/notfound"), OursLength),
        ("empty body", get("/app/empty"), Same),
        ("empty body with CL 0", get("/app/emptycl"), Same),
        ("256 KiB generated", get("/app/big"), Same),
        ("file_wrapper file", get("/app/file"), Same),
        ("file_wrapper seek+CL", get("/app/filecl"), Same),
        ("file_wrapper BytesIO", get("/app/bytesio"), Same),
        ("write()", get("/app/write"), Same),
        ("redirect", get("/app/redirect"), OursLength),
        ("latin-1 header", get("/app/latin1"), OursLength),
        ("custom reason", get("/app/status"), OursLength),
        ("exception -> 500", get("/app/exc"), Same),
        ("missing script", get("/missing"), Same),
    ]
}

/// Deliberate difference: a repeated response header (other than Set-Cookie) is folded into one
/// comma-separated field in both modes here, as mod_wsgi's own daemon mode does; Debian's
/// mod_wsgi sends separate lines in embedded mode. Folds Debian's headers the same way, so the
/// values and their order are still compared.
fn fold_repeated(s: &mut Seen) {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut raw = std::mem::take(&mut s.headers);
    // `seen` sorted by (name, value); fold in that order (the test sends values in order).
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in raw {
        match out.last_mut() {
            Some((lk, lv)) if *lk == k && k != "set-cookie" => {
                lv.push_str(", ");
                lv.push_str(&v);
            }
            _ => out.push((k, v)),
        }
    }
    s.headers = out;
}

fn header_is(s: &Seen, name: &str, value: &str) -> bool {
    s.headers.iter().any(|(k, v)| k == name && v == value)
}

#[test]
fn same_responses_as_debian_mod_wsgi() {
    let ours = start(None);
    let theirs = start(Some(DEBIAN_MOD_WSGI));
    let mut diffs = Vec::new();
    let all = requests();
    for (name, raw, framing) in &all {
        let ro = ours.request(raw);
        let mut a = seen(&ro);
        let mut b = seen(&theirs.request(raw));
        fold_repeated(&mut b);
        if *framing == Framing::OursLength {
            let len = ro.body.len().to_string();
            if !(header_is(&a, "content-length", &len) && !ro.chunked && header_is(&b, "transfer-encoding", "chunked")) {
                diffs.push(format!("--- {name}: expected Content-Length {len} from us and chunked from Debian\n ours:   {a:?}\n debian: {b:?}"));
                continue;
            }
            a.headers.retain(|(k, _)| k != "content-length");
            b.headers.retain(|(k, _)| k != "transfer-encoding");
        }
        if a != b {
            diffs.push(format!("--- {name}\n ours:   {a:?}\n debian: {b:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} responses differ from Debian's mod_wsgi:\n{}",
        diffs.len(),
        all.len(),
        diffs.join("\n")
    );
    // Sanity: the comparison is not vacuous.
    assert_eq!(ours.get("/app/hello").text(), "Hello World!");
    assert_eq!(theirs.get("/app/hello").text(), "Hello World!");
}

/// Values that legitimately differ between two servers or two implementations: compared by
/// presence only.
const VALUE_DIFFERS: &[&str] = &[
    "REMOTE_PORT",
    "SERVER_SOFTWARE", // names the module and its version
    "mod_wsgi.version",
    "mod_wsgi.request_id",
    "mod_wsgi.request_start", // timestamps (microseconds)
    "mod_wsgi.script_start",
    "mod_wsgi.thread_id", // per-thread counters
    "mod_wsgi.thread_requests",
    "mod_wsgi.total_requests",
    "apache.version", // checked separately below
    "wsgi.input",
    "wsgi.errors",
    "wsgi.file_wrapper",
];

/// The environ as `key -> repr`, with per-server paths/ports normalised; plus apache.version.
fn environ_of(a: &Apache, raw: &[u8]) -> (BTreeMap<String, String>, String) {
    let r = a.request(raw);
    assert_eq!(r.status, 200, "{r}");
    let dir = a.dir.to_string_lossy().into_owned();
    let text = r.text();
    let apache_version = text
        .lines()
        .find_map(|l| l.strip_prefix("apache.version\t"))
        .unwrap_or("<missing>")
        .to_string();
    let env = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| {
            let v = if VALUE_DIFFERS.contains(&k) {
                "<differs>".to_string()
            } else {
                v.replace(&dir, "{dir}").replace(&a.port.to_string(), "{port}")
            };
            (k.to_string(), v)
        })
        .collect();
    (env, apache_version)
}

#[test]
fn same_environ_as_debian_mod_wsgi() {
    let ours = start(None);
    let theirs = start(Some(DEBIAN_MOD_WSGI));
    let mut raw_get = b"GET /app/environ/caf%C3%A9?q=1&r=%20 HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    raw_get.extend_from_slice(b"X-Latin: caf\xe9\r\nX-Under_score: 1\r\nProxy: x\r\nAuthorization: Basic Zm9vOmJhcg==\r\n");
    raw_get.extend_from_slice(b"Cookie: a=1; b=2\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    let raw_post = http_request(
        "POST",
        "/app/environ",
        &[("Content-Type", "application/json"), ("Connection", "close")],
        b"{}",
    );
    for (name, raw) in [("GET", raw_get), ("POST", raw_post)] {
        let (a, apache_version) = environ_of(&ours, &raw);
        let (b, _) = environ_of(&theirs, &raw);
        // Deliberate improvement: Debian's mod_wsgi reports the Apache version it was compiled
        // against (2.4.55); ours reports the running server's, as SERVER_SOFTWARE shows it.
        let running = ours.get("/app/hello").header("Server").unwrap_or("").to_string();
        let v = apache_version.trim_start_matches('(').trim_end_matches(')').replace(", ", ".");
        assert!(
            running.starts_with(&format!("Apache/{v} ")),
            "apache.version {apache_version} is not the running server's ({running})"
        );
        assert!(a.len() > 30 && b.len() > 30, "{a:#?}\n{b:#?}");
        let ka: BTreeSet<&String> = a.keys().collect();
        let kb: BTreeSet<&String> = b.keys().collect();
        let only_ours: Vec<_> = ka.difference(&kb).collect();
        let only_theirs: Vec<_> = kb.difference(&ka).collect();
        let mut value_diffs = Vec::new();
        for k in ka.intersection(&kb) {
            if a[*k] != b[*k] {
                value_diffs.push(format!("{k}: ours {} / debian {}", a[*k], b[*k]));
            }
        }
        assert!(
            only_ours.is_empty() && only_theirs.is_empty() && value_diffs.is_empty(),
            "{name}: environ differs from Debian's mod_wsgi\n only ours: {only_ours:?}\n only debian: {only_theirs:?}\n values:\n  {}",
            value_diffs.join("\n  ")
        );
    }
}
