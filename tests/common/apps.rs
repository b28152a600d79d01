//! The PEP 3333 test applications of tests/pep3333.rs (run in embedded and in daemon mode) and
//! the helpers they need.

use super::*;
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

// ---------------------------------------------------------------------------------------------
// Servers and scripts
// ---------------------------------------------------------------------------------------------

pub const SCRIPTS_DIR: &str = "<Directory {dir}/scripts>\n    Require all granted\n</Directory>\n";

/// The same application source wrapped in `wsgiref.validate.validator`. The source reads the
/// module global `VALIDATED` to avoid calls the validator itself forbids (such as `read()`
/// without a size, or `write(str)`, which it asserts against before our code sees them).
pub fn validated(src: &str) -> String {
    format!(
        "VALIDATED = True\n{src}\n\n\
         import warnings as _warnings\n\
         from wsgiref.validate import validator as _validator, WSGIWarning as _WSGIWarning\n\
         _warnings.simplefilter('error', _WSGIWarning)\n\
         application = _validator(application)\n"
    )
}

/// The scripts `<name>.wsgi` (`src`) and `<name>_v.wsgi` (`src` under the validator).
pub fn plain_and_validated(name: &str, src: &str) -> [(String, String); 2] {
    [(format!("{name}.wsgi"), src.to_string()), (format!("{name}_v.wsgi"), validated(src))]
}

/// `/<name>_v` and `/<name>` mounted on the scripts of [`plain_and_validated`] (the longer
/// prefix first).
pub fn plain_and_validated_mounts(name: &str) -> String {
    format!(
        "WSGIScriptAlias /{name}_v {{dir}}/scripts/{name}_v.wsgi\n\
         WSGIScriptAlias /{name} {{dir}}/scripts/{name}.wsgi\n"
    )
}

pub fn get(a: &Apache, path: &str) -> Response {
    a.get(path)
}

/// Rewrites a script and gives it an mtime clearly different from the old one.
pub fn rewrite_script(path: &Path, src: &str) {
    fs::write(path, src).unwrap();
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Error log and files the applications write
// ---------------------------------------------------------------------------------------------

/// Error-log lines written since byte offset `mark` that contain `needle`.
pub fn new_lines_with(a: &Apache, mark: usize, needle: &str) -> Vec<String> {
    let log = a.error_log();
    let tail = if mark <= log.len() { &log[mark..] } else { &log[..] };
    tail.lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
}

/// Waits (up to 10 s) until at least `n` new lines contain `needle`, then lets the log settle
/// briefly and returns all such new lines.
pub fn wait_new_lines(a: &Apache, mark: usize, needle: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if new_lines_with(a, mark, needle).len() >= n || Instant::now() > deadline {
            thread::sleep(Duration::from_millis(300));
            return new_lines_with(a, mark, needle);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn log_mark(a: &Apache) -> usize {
    a.error_log().len()
}

/// Polls a file the application writes (in `{dir}/tmp`) until `pred` holds on its contents.
pub fn wait_file(path: &Path, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let s = fs::read_to_string(path).unwrap_or_default();
        if pred(&s) || Instant::now() > deadline {
            return s;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Raw responses
// ---------------------------------------------------------------------------------------------

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads from the connection's socket (bypassing the harness' buffered reader, which must not
/// have been used yet) until `needle` is in `buf`, EOF, or `timeout`. Returns whether found.
pub fn read_raw_until(c: &Conn, buf: &mut Vec<u8>, needle: &[u8], timeout: Duration) -> bool {
    let mut s: &TcpStream = c.stream();
    let deadline = Instant::now() + timeout;
    let mut chunk = vec![0u8; 64 * 1024];
    let found = loop {
        if find(buf, needle).is_some() {
            break true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(5))));
        match s.read(&mut chunk) {
            Ok(0) => break find(buf, needle).is_some(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break find(buf, needle).is_some(),
        }
    };
    let _ = s.set_read_timeout(Some(READ_TIMEOUT));
    found
}

// ---------------------------------------------------------------------------------------------
// environ
// ---------------------------------------------------------------------------------------------

/// Returns the environ as `key<TAB>repr` lines, plus `@name<TAB>True/False` type and API
/// checks and `@pid<TAB>` the serving process id.
pub const ENV_APP: &str = r#"
VALIDATED = globals().get('VALIDATED', False)
import os

def show(v):
    if v is None or isinstance(v, (str, bool, int, float, tuple)):
        return repr(v)
    return '<%s>' % type(v).__name__

def application(environ, start_response):
    lines = ['%s\t%s' % (k, show(v)) for k, v in sorted(environ.items())]
    inp = environ['wsgi.input']
    err = environ['wsgi.errors']
    lines.append('@validated\t%r' % VALIDATED)
    lines.append('@pid\t%d' % os.getpid())
    lines.append('@input_api\t%r' % all(callable(getattr(inp, m, None))
                                         for m in ('read', 'readline', 'readlines', '__iter__')))
    lines.append('@errors_api\t%r' % all(callable(getattr(err, m, None))
                                          for m in ('write', 'writelines', 'flush')))
    lines.append('@file_wrapper_callable\t%r' % callable(environ['wsgi.file_wrapper']))
    lines.append('@keys_are_str\t%r' % all(type(k) is str for k in environ))
    lines.append('@cgi_values_are_str\t%r' % all(type(v) is str for k, v in environ.items() if '.' not in k))
    lines.append('@multithread_is_bool\t%r' % (type(environ['wsgi.multithread']) is bool))
    lines.append('@multiprocess_is_bool\t%r' % (type(environ['wsgi.multiprocess']) is bool))
    lines.append('@run_once_is_bool\t%r' % (type(environ['wsgi.run_once']) is bool))
    body = ('\n'.join(lines) + '\n').encode('utf-8')
    start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8'),
                              ('Content-Length', str(len(body)))])
    return [body]
"#;

/// A GET with headers that exercise HTTP_* filtering, built by hand (a raw latin-1 byte). The
/// Host carries the port, so SERVER_PORT and the %{RESOURCE} group name include it.
pub fn env_request(path: &str, port: u16) -> Vec<u8> {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\n\
         Host: localhost:{port}\r\n\
         X-Under_score: dropped\r\n\
         Proxy: http://evil.example/\r\n\
         Authorization: Basic dXNlcjpwYXNz\r\n\
         X-Good-Header: good\r\n"
    )
    .into_bytes();
    r.extend_from_slice(b"X-Latin: caf\xe9\r\n");
    r.extend_from_slice(b"Connection: close\r\n\r\n");
    r
}

/// Parses the `key<TAB>repr` lines the environ-dumping apps return.
pub fn parse_env(r: &Response) -> HashMap<String, String> {
    r.text()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn env_get<'a>(env: &'a HashMap<String, String>, key: &str) -> &'a str {
    env.get(key).map(String::as_str).unwrap_or("<missing>")
}

// ---------------------------------------------------------------------------------------------
// wsgi.input
// ---------------------------------------------------------------------------------------------

pub const INPUT_APP: &str = r#"
VALIDATED = globals().get('VALIDATED', False)
import os

def record(environ, name, msg):
    d = os.path.join(os.path.dirname(environ['SCRIPT_FILENAME']), '..', 'tmp')
    with open(os.path.join(d, name), 'a') as f:
        f.write(msg + '\n')

def application(environ, start_response):
    inp = environ['wsgi.input']
    op = environ.get('QUERY_STRING', '')
    if op == 'all':
        result = inp.read(-1) if VALIDATED else inp.read()
    elif op == 'n':
        result = [inp.read(5), inp.read(1), inp.read(0), inp.read(12), inp.read(1000), inp.read(10)]
    elif op == 'line':
        result = [inp.readline() for _ in range(6)]
    elif op == 'linen':
        result = [inp.readline(3), inp.readline(100), inp.readline(4), inp.readline(),
                  inp.readline(-1), inp.readline(5), inp.readline(0), inp.readline()]
    elif op == 'lines':
        result = inp.readlines()
    elif op == 'lineshint':
        result = [inp.readlines(8), inp.readlines()]
    elif op == 'iter':
        result = list(inp)
    elif op == 'mixed':
        result = [inp.read(2), inp.readline(), inp.readline(7), list(inp)]
    elif op == 'big':
        import hashlib
        h = hashlib.sha256()
        n = 0
        while True:
            d = inp.read(65536)
            if not d:
                break
            n += len(d)
            h.update(d)
        result = (n, h.hexdigest())
    elif op == 'stream':
        first = inp.readline()
        record(environ, 'stream.log', 'first %r' % first)
        result = [first, inp.read(100)]
    elif op == 'none':
        result = 'not read'
    elif op == 'gone':
        n = 0
        try:
            while True:
                d = inp.read(100)
                if not d:
                    record(environ, 'gone.log', 'eof after %d' % n)
                    break
                n += len(d)
        except Exception as e:
            record(environ, 'gone.log', 'raised %s oserror=%s after %d' % (type(e).__name__, isinstance(e, OSError), n))
            raise
        result = n
    else:
        result = 'unknown op %r' % op
    body = ('%r|CL=%r' % (result, environ.get('CONTENT_LENGTH'))).encode()
    if 'chunked' in environ.get('HTTP_TRANSFER_ENCODING', ''):
        body += ('|TERM=%r' % environ.get('wsgi.input_terminated')).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
"#;

pub const INPUT_CONF: &str = "\
WSGIScriptAlias /input_v {dir}/scripts/input_v.wsgi
WSGIScriptAlias /input_c {dir}/scripts/input.wsgi
WSGIScriptAlias /input_l {dir}/scripts/input.wsgi
WSGIScriptAlias /input {dir}/scripts/input.wsgi
<Location /input_c>
    WSGIChunkedRequest On
</Location>
<Location /input_l>
    LimitRequestBody 10
</Location>
";

pub const BODY: &[u8] = b"line1\nline2 is longer\n\nline4 no newline";

/// (op, expected repr of the result) for BODY.
pub const INPUT_OPS: &[(&str, &str)] = &[
    ("n", r"[b'line1', b'\n', b'', b'line2 is lon', b'ger\n\nline4 no newline', b'']"),
    ("line", r"[b'line1\n', b'line2 is longer\n', b'\n', b'line4 no newline', b'', b'']"),
    (
        "linen",
        r"[b'lin', b'e1\n', b'line', b'2 is longer\n', b'\n', b'line4', b'', b' no newline']",
    ),
    ("lines", r"[b'line1\n', b'line2 is longer\n', b'\n', b'line4 no newline']"),
    ("lineshint", r"[[b'line1\n', b'line2 is longer\n'], [b'\n', b'line4 no newline']]"),
    ("iter", r"[b'line1\n', b'line2 is longer\n', b'\n', b'line4 no newline']"),
    ("mixed", r"[b'li', b'ne1\n', b'line2 i', [b's longer\n', b'\n', b'line4 no newline']]"),
    ("all", r"b'line1\nline2 is longer\n\nline4 no newline'"),
];

// ---------------------------------------------------------------------------------------------
// wsgi.errors, sys.stdout, sys.stderr
// ---------------------------------------------------------------------------------------------

pub const ERRORS_APP: &str = r#"
VALIDATED = globals().get('VALIDATED', False)
import sys

def application(environ, start_response):
    mode, _, tag = environ['QUERY_STRING'].partition('-')
    err = environ['wsgi.errors']
    if mode == 'lines':
        print('stdout-line-%s' % tag)
        print('stderr-line-%s' % tag, file=sys.stderr)
        err.write('errors-line-%s\n' % tag)
        err.writelines(['wl1-%s\n' % tag, 'wl2-%s\n' % tag])
        err.write('multi-a-%s\nmulti-b-%s\n' % (tag, tag))
        err.write('split-')
        err.write('%s\n' % tag)
    if mode == 'lines' and not VALIDATED:
        # The text streams are io.TextIOWrapper: their .buffer takes bytes-like objects
        # (wsgiref.validate's wrapper of wsgi.errors has no .buffer).
        err.buffer.write(b'buf-bytes-%s\n' % tag.encode())
        err.buffer.write(bytearray(b'buf-bytearray-%s\n' % tag.encode()))
        err.buffer.write(memoryview(b'buf-memoryview-%s\n' % tag.encode()))
        err.buffer.writelines([b'bufline-one-%s\n' % tag.encode(), bytearray(b'bufline-two-%s\n' % tag.encode())])
        sys.stderr.buffer.write(b'stderr-buf-%s\n' % tag.encode())
        err.write('utf8-caf\xe9-%s\n' % tag)
    if mode == 'types':
        name = lambda o: type(o).__module__ + '.' + type(o).__name__
        try:
            sys.stdin.read
            stdin = 'usable'
        except OSError as e:
            stdin = 'OSError: %s' % e
        body = '\n'.join([name(err), name(err.buffer), name(sys.stdout), name(sys.stderr), name(sys.stdin), stdin]).encode()
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [body]
    if mode == 'close':
        # Closing wsgi.errors must not break the streams of later requests.
        # (wsgiref.validate forbids the call itself.)
        err.write('before-close-%s\n' % tag)
        if not VALIDATED:
            err.close()
    if mode == 'detach' and not VALIDATED:
        # Nor must detaching it.
        err.detach()
    if mode == 'perr':
        err.write('partial-errors-%s' % tag)
    elif mode == 'pout':
        sys.stdout.write('partial-stdout-%s' % tag)
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '2')])
    return [b'ok']
"#;

// ---------------------------------------------------------------------------------------------
// start_response
// ---------------------------------------------------------------------------------------------

/// `start_response` cases selected by the query string.
pub const SR_APP: &str = r#"
VALIDATED = globals().get('VALIDATED', False)
import sys

CT = ('Content-Type', 'text/plain')

def replace_after_empty(start_response):
    start_response('200 OK', [CT, ('X-First', '1')])
    yield b''
    try:
        raise ValueError('replace-late')
    except ValueError:
        start_response('202 Replaced', [CT, ('X-Second', '1')], sys.exc_info())
    yield b'replaced-late'

def reraise_after_sent(start_response):
    start_response('200 OK', [CT])
    yield b'first;'
    try:
        raise KeyError('after-sent')
    except KeyError:
        start_response('500 Late', [CT], sys.exc_info())
    yield b'never'

def application(environ, start_response):
    case = environ['QUERY_STRING']
    if case == 'bad_status':
        start_response('abc', [CT])
        return [b'x']
    if case == 'bytes_status':
        start_response(b'200 OK', [CT])
        return [b'x']
    if case == 'nl_value':
        start_response('200 OK', [CT, ('X-Bad', 'a\nb')])
        return [b'x']
    if case == 'space_name':
        start_response('200 OK', [CT, ('X Bad', 'v')])
        return [b'x']
    if case == 'tuple_headers':
        start_response('200 OK', (CT,))
        return [b'x']
    if case == 'second':
        start_response('200 OK', [CT, ('X-Call', 'first')])
        try:
            start_response('201 Created', [CT, ('X-Call', 'second')])
            msg = 'second call accepted'
        except Exception as e:
            msg = 'raised %s' % type(e).__name__
        return [msg.encode()]
    if case == 'second_after_output':
        write = start_response('200 OK', [CT])
        write(b'sent;')
        try:
            start_response('500 Again', [CT])
            return [b'accepted']
        except RuntimeError as e:
            return [('RuntimeError:%s' % e).encode()]
    if case == 'refusals':
        refused = [
            ('OK', [CT]), ('20X OK', [CT]), ('2000 OK', [CT]), ('200OK', [CT]),
            ('200 OK\r\nX-Injected: 1', [CT]), ('200 OK', [('', 'v')]), ('200 OK', [('X Foo', 'v')]),
            ('200 OK', [('X\tFoo', 'v')]), ('200 OK', [('X-Foo', 'one\r\ntwo')]), ('200 OK', [(7, 'v')]),
            ('200 OK', [('X-Foo', '\u20ac\u20ac')]), ('200 OK', ['X-Foo: v']), ('200 OK', [('a', 'b', 'c')]),
            ('200 OK', 'X-Foo: v'), ('200 OK', (CT,)), ('200 OK', {'X-Foo': 'v'}),
        ]
        lines = []
        for status, headers in refused:
            try:
                start_response(status, headers)
                lines.append('accepted')
            except Exception as e:
                lines.append('%s:%s' % (type(e).__name__, e))
        try:
            start_response('200 OK', [CT], 'not-a-tuple')
        except RuntimeError as e:
            lines.append('RuntimeError:%s' % e)
        start_response('200 OK', [CT])
        return ['\n'.join(lines).encode()]
    if case == 'replace':
        start_response('200 OK', [CT, ('X-First', '1')])
        try:
            raise ValueError('replace-me')
        except ValueError:
            start_response('202 Replaced', [CT, ('X-Second', '1')], sys.exc_info())
        return [b'replaced']
    if case == 'replace_late':
        return replace_after_empty(start_response)
    if case == 'reraise':
        return reraise_after_sent(start_response)
    if case == 'latin1':
        start_response('200 OK', [CT, ('X-Latin', 'caf\xe9'), ('Content-Length', '2')])
        return [b'ok']
    if case == 'write':
        write = start_response('200 OK', [CT])
        write(b'hello ')
        write(b'world')
        if VALIDATED:
            return [b' validated']
        try:
            write('a str')
            return [b' accepted-str']
        except TypeError:
            return [b' caught:TypeError']
    start_response('404 Not Found', [CT])
    return [b'unknown case']
"#;

// ---------------------------------------------------------------------------------------------
// Output: Content-Length, framing, streaming, HEAD/204/304, bad items, exceptions
// ---------------------------------------------------------------------------------------------

/// Output cases selected by the query string.
pub const OUT_APP: &str = r#"
VALIDATED = globals().get('VALIDATED', False)
import time

CT = ('Content-Type', 'text/plain')

def gen(start_response, items, headers=None):
    start_response('200 OK', [CT] + (headers or []))
    for it in items:
        if it == 'SLEEP':
            time.sleep(1.0)
        elif it == 'RAISE':
            raise ValueError('boom-after-headers')
        elif it == 'STR':
            yield 'a str item'
        else:
            yield it

def raise_before_first_block(start_response):
    start_response('200 OK', [CT])
    raise ValueError('boom-in-generator-before-body')
    yield b'never'

def application(environ, start_response):
    case = environ['QUERY_STRING']
    if case == 'cl_exact':
        start_response('200 OK', [CT, ('Content-Length', '5')])
        return [b'he', b'', b'llo']
    if case == 'cl_excess':
        start_response('200 OK', [CT, ('Content-Length', '5')])
        return [b'hello', b' world']
    if case == 'cl_short':
        start_response('200 OK', [CT, ('Content-Length', '100')])
        return [b'short']
    if case == 'stream':
        return gen(start_response, [b'a;', b'b;', b'c;'])
    if case == 'slow':
        return gen(start_response, [b'first-block', 'SLEEP', b'second-block'])
    if case == 'cookies':
        start_response('200 OK', [CT, ('Set-Cookie', 'a=1; Path=/'), ('X-Other', 'x'),
                                  ('Set-Cookie', 'b=2; HttpOnly'), ('X-Other', 'y'), ('Content-Length', '2')])
        return [b'ok']
    if case == '204':
        start_response('204 No Content', [])
        return [b'body-of-204']
    if case == '304':
        start_response('304 Not Modified', [])
        return [b'body-of-304']
    if case == 'str_before':
        start_response('200 OK', [CT])
        return ['a str item']
    if case == 'str_after':
        return gen(start_response, [b'ok;', 'STR', b'never'])
    if case == 'exc_before':
        raise ValueError('boom-before-headers')
    if case == 'exc_before_gen':
        return raise_before_first_block(start_response)
    if case == 'exc_after':
        return gen(start_response, [b'partial;', 'RAISE', b'never'])
    if case == 'system_exit':
        raise SystemExit('exit-is-not-for-servers')
    if case == 'request_timeout':
        import mod_wsgi
        raise mod_wsgi.RequestTimeout('gave-up')
    start_response('404 Not Found', [CT])
    return [b'unknown case']
"#;

// ---------------------------------------------------------------------------------------------
// close()
// ---------------------------------------------------------------------------------------------

pub const CLOSE_APP: &str = r#"
import os, time

class Body:
    def __init__(self, environ, rid, n, size, delay, fail_at):
        self.environ, self.rid, self.n, self.delay, self.fail_at = environ, rid, n, delay, fail_at
        self.block = b'x' * size
        self.count = 0
    def __iter__(self):
        return self
    def __next__(self):
        if self.count == self.fail_at:
            raise ValueError('iteration-boom')
        if self.count >= self.n:
            raise StopIteration
        self.count += 1
        if self.delay:
            time.sleep(self.delay)
        return self.block
    def close(self):
        d = os.path.join(os.path.dirname(self.environ['SCRIPT_FILENAME']), '..', 'tmp')
        with open(os.path.join(d, 'close.log'), 'a') as f:
            f.write('close %s %d\n' % (self.rid, self.count))

class ListBody(list):
    # A list subclass may have close(); a plain list has none.
    def close(self):
        d = os.path.join(os.path.dirname(self.environ['SCRIPT_FILENAME']), '..', 'tmp')
        with open(os.path.join(d, 'close.log'), 'a') as f:
            f.write('close %s %d\n' % (self.rid, len(self)))

class TupleBody(tuple):
    def close(self):
        d = os.path.join(os.path.dirname(self.environ['SCRIPT_FILENAME']), '..', 'tmp')
        with open(os.path.join(d, 'close.log'), 'a') as f:
            f.write('close %s %d\n' % (self.rid, len(self)))

def application(environ, start_response):
    case, _, rid = environ['QUERY_STRING'].partition('-')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    if case == 'ok':
        return Body(environ, rid, 3, 10, 0, -1)
    if case in ('list', 'tuple'):
        body = (ListBody if case == 'list' else TupleBody)([b'x' * 10] * 3)
        body.environ, body.rid = environ, rid
        return body
    if case == 'excbefore':
        return Body(environ, rid, 3, 10, 0, 0)
    if case == 'excafter':
        return Body(environ, rid, 3, 10, 0, 2)
    if case == 'slow':
        return Body(environ, rid, 400, 65536, 0.01, -1)
    raise ValueError('unknown case')
"#;

// ---------------------------------------------------------------------------------------------
// wsgi.file_wrapper
// ---------------------------------------------------------------------------------------------

/// Returns `data/<name>` through `wsgi.file_wrapper`: `kind=file`, the file `blob.bin` itself;
/// `kind=bytesio`, a copy of it in a BytesIO; `kind=big`, the file `big.bin`; from `off`, block
/// size `blk`, with Content-Length `cl` if given.
pub const FW_APP: &str = r#"
import io, os

def application(environ, start_response):
    q = dict(p.split('=', 1) for p in environ['QUERY_STRING'].split('&') if p)
    name = 'big.bin' if q['kind'] == 'big' else 'blob.bin'
    path = os.path.join(os.path.dirname(environ['SCRIPT_FILENAME']), '..', 'data', name)
    if q['kind'] in ('file', 'big'):
        f = open(path, 'rb')
    else:
        with open(path, 'rb') as g:
            f = io.BytesIO(g.read())
    f.seek(int(q.get('off', '0')))
    headers = [('Content-Type', 'application/octet-stream')]
    if 'cl' in q:
        headers.append(('Content-Length', q['cl']))
    start_response('200 OK', headers)
    return environ['wsgi.file_wrapper'](f, int(q.get('blk', '8192')))
"#;

/// The contents of `data/blob.bin`.
pub fn blob() -> Vec<u8> {
    (0..200 * 1024u32).map(|i| ((i * 7 + i / 256) % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// WSGICallableObject / callable-object= / WSGIScriptReloading
// ---------------------------------------------------------------------------------------------

/// Callables `myapp` and `other` answering
/// `<name>:<mod_wsgi.callable_object>:<mod_wsgi.process_group>`.
pub const CO_APP: &str = r#"
def body(environ, name, start_response):
    b = ('%s:%s:%s' % (name, environ['mod_wsgi.callable_object'], environ['mod_wsgi.process_group'])).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(b)))])
    return [b]

def myapp(environ, start_response):
    return body(environ, 'myapp', start_response)

def other(environ, start_response):
    return body(environ, 'other', start_response)
"#;

const RELOAD_APP: &str = "\
import os
VERSION = '@VERSION@'
def application(environ, start_response):
    b = ('%s|%s|%d' % (VERSION, environ['mod_wsgi.script_reloading'], os.getpid())).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(b)))])
    return [b]
";

/// Answers `<version>|<mod_wsgi.script_reloading>|<process id>`.
pub fn reload_app(version: &str) -> String {
    RELOAD_APP.replace("@VERSION@", version)
}

/// Mounts `co.wsgi` as `/cloc` (WSGICallableObject myapp) and `/copt` (callable-object=other),
/// `reload.wsgi` as `/reload` and `noreload.wsgi` as `/noreload` (WSGIScriptReloading Off).
pub const CALLABLE_AND_RELOAD_CONF: &str = "\
WSGIScriptAlias /cloc {dir}/scripts/co.wsgi
WSGIScriptAlias /copt {dir}/scripts/co.wsgi callable-object=other
<Location /cloc>
    WSGICallableObject myapp
</Location>
WSGIScriptAlias /reload {dir}/scripts/reload.wsgi
WSGIScriptAlias /noreload {dir}/scripts/noreload.wsgi
<Location /noreload>
    WSGIScriptReloading Off
</Location>
";
