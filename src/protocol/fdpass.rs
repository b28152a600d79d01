//! Passing a file descriptor with a frame over a Unix socket (SCM_RIGHTS).

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::sys;

/// Sends `bytes` with `fd` attached. All of `bytes` is written (the descriptor with the first
/// byte). `fd` may be a descriptor number owned outside Rust (a Python file's `fileno()`): see
/// [`sys::socket::send_with_fd`].
pub fn send_with_fd(sock: &UnixStream, bytes: &[u8], fd: RawFd) -> io::Result<()> {
    let sent = sys::socket::send_with_fd(sock.as_fd(), bytes, fd)?;
    if sent < bytes.len() {
        use std::io::Write;
        (&*sock).write_all(&bytes[sent..])?;
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes, returning a descriptor if one came with them.
pub fn recv_with_fd(sock: &UnixStream, buf: &mut [u8]) -> io::Result<Option<OwnedFd>> {
    let mut got = 0;
    let mut fd = None;
    while got < buf.len() {
        let (n, f) = recv_some(sock, &mut buf[got..])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the connection"));
        }
        if f.is_some() {
            fd = f;
        }
        got += n;
    }
    Ok(fd)
}

/// Reads frames through a buffer, keeping descriptors that arrive with the bytes.
///
/// The kernel never merges the bytes of a message carrying descriptors with later bytes in one
/// read, and only [`super::Frame::File`] carries one, so descriptors are handed out in the order
/// File frames are decoded.
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    fds: std::collections::VecDeque<OwnedFd>,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader { buf: vec![0; 64 * 1024], start: 0, end: 0, fds: Default::default() }
    }
}

impl FrameReader {
    /// Whether descriptors arrived that no File frame claimed (a misbehaving peer): such a
    /// connection must not be reused.
    pub fn has_stray_fds(&self) -> bool {
        !self.fds.is_empty()
    }

    /// The next frame and, for a File frame, its descriptor. `Ok(None)` at a clean end of stream.
    pub fn next(&mut self, sock: &UnixStream) -> io::Result<Option<(super::Frame, Option<OwnedFd>)>> {
        loop {
            match super::decode(&self.buf[self.start..self.end]) {
                Ok((f, used)) => {
                    self.start += used;
                    if self.start == self.end && self.buf.len() > 256 * 1024 {
                        // A large frame went through: give the memory back.
                        self.buf = vec![0; 64 * 1024];
                        self.start = 0;
                        self.end = 0;
                    }
                    let fd = if matches!(f, super::Frame::File { .. }) { self.fds.pop_front() } else { None };
                    return Ok(Some((f, fd)));
                }
                Err(super::DecodeError::Truncated) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            // Make room: move what is left to the front, grow for a large frame.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end >= 5 {
                let need = 5 + u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if need > self.buf.len() {
                    self.buf.resize(need, 0);
                }
            }
            if self.end == self.buf.len() {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
            let (n, fd) = recv_some(sock, &mut self.buf[self.end..])?;
            if let Some(fd) = fd {
                self.fds.push_back(fd);
            }
            if n == 0 {
                return if self.end == self.start {
                    Ok(None)
                } else {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a frame"))
                };
            }
            self.end += n;
        }
    }
}

/// One recvmsg: some bytes (0 at end of stream) and a descriptor if one came with them.
fn recv_some(sock: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    sys::socket::recv_with_fd(sock.as_fd(), buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_descriptor_travels_with_its_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut f = tempfile_with(b"hello fd");
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        send_with_fd(&a, b"abc", f.as_raw_fd()).unwrap();
        let mut buf = [0u8; 3];
        let fd = recv_with_fd(&b, &mut buf).unwrap().expect("descriptor");
        assert_eq!(&buf, b"abc");
        let mut g = std::fs::File::from(fd);
        let mut s = String::new();
        g.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello fd");
    }

    #[test]
    fn frame_reader_pairs_descriptors_with_file_frames() {
        use crate::protocol::{Frame, encode};
        let (a, b) = UnixStream::pair().unwrap();
        let f = tempfile_with(b"zz");
        let mut w = &a;
        w.write_all(&encode(&Frame::Started)).unwrap();
        w.write_all(&encode(&Frame::Data { flush: false, data: vec![1; 100_000] })).unwrap_or(());
        let mut r = FrameReader::default();
        let t = std::thread::spawn(move || {
            send_with_fd(&a, &encode(&Frame::File { offset: 0, len: 2 }), f.as_raw_fd()).unwrap();
            let mut w = &a;
            w.write_all(&encode(&Frame::BodyEnd)).unwrap();
        });
        assert_eq!(r.next(&b).unwrap().unwrap().0, Frame::Started);
        assert!(matches!(r.next(&b).unwrap().unwrap(), (Frame::Data { .. }, None)));
        let (f, fd) = r.next(&b).unwrap().unwrap();
        assert_eq!(f, Frame::File { offset: 0, len: 2 });
        assert!(fd.is_some());
        assert_eq!(r.next(&b).unwrap().unwrap().0, Frame::BodyEnd);
        t.join().unwrap();
    }

    fn tempfile_with(data: &[u8]) -> std::fs::File {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("fdpass-{}-{n}", std::process::id()));
        let mut f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        f.write_all(data).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }
}
