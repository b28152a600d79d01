# Benchmark application: one script, several paths.
import os

MIB = b'x' * (1024 * 1024)
BIG_FILE = os.path.join(os.path.dirname(__file__), 'big.bin')


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/pid':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(os.getpid()).encode()]
    if path == '/1m':
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(len(MIB)))])
        return [MIB]
    if path == '/file':
        f = open(BIG_FILE, 'rb')
        size = os.fstat(f.fileno()).st_size
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(size))])
        return environ['wsgi.file_wrapper'](f, 65536)
    if path == '/upload':
        inp = environ['wsgi.input']
        total = 0
        while True:
            block = inp.read(65536)
            if not block:
                break
            total += len(block)
        out = str(total).encode()
        start_response('200 OK', [('Content-Type', 'text/plain'),
                                  ('Content-Length', str(len(out)))])
        return [out]
    start_response('404 Not Found', [('Content-Type', 'text/plain'), ('Content-Length', '0')])
    return []
