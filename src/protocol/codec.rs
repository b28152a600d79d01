//! Encoding and decoding of frames.

use std::io::{self, Read, Write};

use super::{BodyErrorKind, EndKind, Frame, MAGIC, MAX_FRAME, Request, RequestRef};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame truncated")]
    Truncated,
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("bad magic: not a mod_wsgi daemon peer")]
    BadMagic,
    #[error("invalid UTF-8 in a text field")]
    BadText,
    #[error("invalid value {0}")]
    BadValue(u64),
    #[error("{0} trailing bytes after the frame's fields")]
    Trailing(usize),
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::BadValue(v as u64)),
        }
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError::BadText)
    }
    /// A count of items each at least `min` bytes long, checked against what is left.
    fn count(&mut self, min: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
}

fn type_of(f: &Frame) -> u8 {
    match f {
        Frame::Hello { .. } => 1,
        Frame::HelloOk { .. } => 2,
        Frame::Request(_) => 3,
        Frame::ReadBody { .. } => 4,
        Frame::Body(_) => 5,
        Frame::BodyEnd => 6,
        Frame::BodyError { .. } => 7,
        Frame::Head { .. } => 8,
        Frame::Data { .. } => 9,
        Frame::File { .. } => 10,
        Frame::End(_) => 11,
        Frame::Abort(_) => 12,
        Frame::Retry(_) => 13,
        Frame::Refused(_) => 14,
        Frame::Started => 15,
    }
}

/// Encodes a frame (header included).
pub fn encode(f: &Frame) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(64));
    w.u8(type_of(f));
    w.u32(0); // length, patched below
    match f {
        Frame::Hello { version, secret } => {
            w.0.extend_from_slice(&MAGIC);
            w.u16(*version);
            w.bytes(secret);
        }
        Frame::HelloOk { pid } => w.u32(*pid),
        Frame::BodyEnd | Frame::Started => {}
        Frame::Request(r) => {
            let cgi: Vec<(&str, &[u8])> = r.cgi.iter().collect();
            return encode_request(&RequestRef {
                script: &r.script,
                callable: &r.callable,
                application_group: &r.application_group,
                script_reloading: r.script_reloading,
                mtime: r.mtime,
                header_only: r.header_only,
                url_scheme: &r.url_scheme,
                request_id: &r.request_id,
                queue_start: r.queue_start,
                client: &r.client,
                cgi: &cgi,
            });
        }
        Frame::ReadBody { max } => w.u32(*max),
        Frame::Body(b) => w.0.extend_from_slice(b),
        Frame::BodyError { kind, message } => {
            w.u8(*kind as u8);
            w.str(message);
        }
        Frame::Abort(s) | Frame::Retry(s) | Frame::Refused(s) => w.str(s),
        Frame::Head { code, status, headers } => {
            w.u16(*code);
            w.str(status);
            w.u32(headers.len() as u32);
            for (k, v) in headers {
                w.str(k);
                w.str(v);
            }
        }
        Frame::Data { flush, data } => {
            w.u8(*flush as u8);
            w.0.extend_from_slice(data);
        }
        Frame::File { offset, len } => {
            w.u64(*offset);
            w.u64(*len);
        }
        Frame::End(k) => w.u8(*k as u8),
    }
    let len = (w.0.len() - 5) as u32;
    w.0[1..5].copy_from_slice(&len.to_be_bytes());
    w.0
}

/// Encodes a request frame straight from borrowed data.
pub fn encode_request(r: &RequestRef<'_>) -> Vec<u8> {
    let size: usize = 64 + r.cgi.iter().map(|(k, v)| 8 + k.len() + v.len()).sum::<usize>();
    let mut w = W(Vec::with_capacity(size + r.script.len() * 2));
    w.u8(3);
    w.u32(0);
    w.str(r.script);
    w.str(r.callable);
    w.str(r.application_group);
    w.u8(r.script_reloading as u8);
    w.u64(r.mtime as u64);
    w.u8(r.header_only as u8);
    w.str(r.url_scheme);
    w.str(r.request_id);
    w.u64(r.queue_start as u64);
    w.str(r.client);
    w.u32(r.cgi.len() as u32);
    for (k, v) in r.cgi {
        w.str(k);
        w.bytes(v);
    }
    let len = (w.0.len() - 5) as u32;
    w.0[1..5].copy_from_slice(&len.to_be_bytes());
    w.0
}

/// Decodes one frame from `buf` (header included). Returns the frame and the bytes consumed,
/// or `Truncated` if more input is needed.
pub fn decode(buf: &[u8]) -> Result<(Frame, usize), DecodeError> {
    if buf.len() < 5 {
        return Err(DecodeError::Truncated);
    }
    let ty = buf[0];
    let len = u32::from_be_bytes(buf[1..5].try_into().unwrap()) as usize;
    if len > super::MAX_FRAME {
        return Err(DecodeError::TooLarge(len));
    }
    if buf.len() < 5 + len {
        return Err(DecodeError::Truncated);
    }
    let frame = decode_payload(ty, &buf[5..5 + len])?;
    Ok((frame, 5 + len))
}

fn decode_payload(ty: u8, payload: &[u8]) -> Result<Frame, DecodeError> {
    let mut r = R(payload);
    let f = match ty {
        1 => {
            if r.take(4)? != MAGIC {
                return Err(DecodeError::BadMagic);
            }
            let version = r.u16()?;
            Frame::Hello { version, secret: r.bytes()?.to_vec() }
        }
        2 => Frame::HelloOk { pid: r.u32()? },
        3 => {
            let mut q = Request {
                script: r.string()?,
                callable: r.string()?,
                application_group: r.string()?,
                script_reloading: r.bool()?,
                mtime: r.u64()? as i64,
                header_only: r.bool()?,
                url_scheme: r.string()?,
                request_id: r.string()?,
                queue_start: r.u64()? as i64,
                client: r.string()?,
                cgi: Default::default(),
            };
            let n = r.count(8)?;
            let mut cgi = super::Cgi::with_capacity(n, r.0.len());
            for _ in 0..n {
                let k = std::str::from_utf8(r.bytes()?).map_err(|_| DecodeError::BadText)?;
                cgi.push(k, r.bytes()?);
            }
            q.cgi = cgi;
            Frame::Request(Box::new(q))
        }
        4 => Frame::ReadBody { max: r.u32()? },
        5 => return Ok(Frame::Body(payload.to_vec())),
        6 => Frame::BodyEnd,
        7 => {
            let kind = match r.u8()? {
                0 => BodyErrorKind::ClientGone,
                1 => BodyErrorKind::TimedOut,
                2 => BodyErrorKind::TooLarge,
                3 => BodyErrorKind::Other,
                v => return Err(DecodeError::BadValue(v as u64)),
            };
            Frame::BodyError { kind, message: r.string()? }
        }
        8 => {
            let code = r.u16()?;
            let status = r.string()?;
            let n = r.count(8)?;
            let mut headers = Vec::with_capacity(n);
            for _ in 0..n {
                let k = r.string()?;
                headers.push((k, r.string()?));
            }
            Frame::Head { code, status, headers }
        }
        9 => {
            let flush = r.bool()?;
            return Ok(Frame::Data { flush, data: r.0.to_vec() });
        }
        10 => Frame::File { offset: r.u64()?, len: r.u64()? },
        11 => Frame::End(match r.u8()? {
            0 => EndKind::Complete,
            1 => EndKind::Failed,
            2 => EndKind::ClientGone,
            3 => EndKind::TimedOut,
            4 => EndKind::BodyTimedOut,
            v => return Err(DecodeError::BadValue(v as u64)),
        }),
        12 => Frame::Abort(r.string()?),
        13 => Frame::Retry(r.string()?),
        14 => Frame::Refused(r.string()?),
        15 => Frame::Started,
        other => return Err(DecodeError::UnknownType(other)),
    };
    if !r.0.is_empty() {
        return Err(DecodeError::Trailing(r.0.len()));
    }
    Ok(f)
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, f: &Frame) -> io::Result<()> {
    w.write_all(&encode(f))
}

/// Reads one frame (blocking). `Ok(None)` on a clean end of stream before any byte of a frame.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < 5 {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a frame header")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, DecodeError::TooLarge(len)));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    decode_payload(head[0], &payload).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::VERSION;

    fn all_frames() -> Vec<Frame> {
        vec![
            Frame::Hello { version: VERSION, secret: vec![7; 32] },
            Frame::HelloOk { pid: 4242 },
            Frame::Request(Box::new(Request {
                script: "/srv/app.wsgi".into(),
                callable: "application".into(),
                application_group: "h|/x".into(),
                script_reloading: true,
                mtime: 1_700_000_000_123_456,
                header_only: false,
                url_scheme: "https".into(),
                request_id: "1.2".into(),
                queue_start: 1_700_000_000_654_321,
                client: "127.0.0.1:5555".into(),
                cgi: [("PATH_INFO", &b"/caf\xc3\xa9"[..]), ("QUERY_STRING", &b""[..])].into_iter().collect(),
            })),
            Frame::ReadBody { max: 65536 },
            Frame::Body(b"abc".to_vec()),
            Frame::BodyEnd,
            Frame::BodyError { kind: BodyErrorKind::ClientGone, message: "gone".into() },
            Frame::Head {
                code: 200,
                status: "200 OK".into(),
                headers: vec![("Set-Cookie".into(), "a=1".into()), ("Set-Cookie".into(), "b=2".into())],
            },
            Frame::Data { flush: true, data: vec![0; 1000] },
            Frame::File { offset: 10, len: 1 << 33 },
            Frame::End(EndKind::Complete),
            Frame::End(EndKind::Failed),
            Frame::End(EndKind::ClientGone),
            Frame::End(EndKind::TimedOut),
            Frame::End(EndKind::BodyTimedOut),
            Frame::BodyError { kind: BodyErrorKind::TimedOut, message: "slow".into() },
            Frame::Abort("boom".into()),
            Frame::Retry("restarting".into()),
            Frame::Refused("bad secret".into()),
            Frame::Started,
        ]
    }

    #[test]
    fn every_frame_round_trips() {
        for f in all_frames() {
            let bytes = encode(&f);
            let (back, used) = decode(&bytes).unwrap();
            assert_eq!(back, f);
            assert_eq!(used, bytes.len());
            let mut cur = std::io::Cursor::new(bytes);
            assert_eq!(read_frame(&mut cur).unwrap(), Some(f));
            assert_eq!(read_frame(&mut cur).unwrap(), None);
        }
    }

    #[test]
    fn multi_valued_headers_are_kept_in_order() {
        let f = &all_frames()[7];
        let (back, _) = decode(&encode(f)).unwrap();
        match back {
            Frame::Head { headers, .. } => assert_eq!(headers.iter().filter(|(k, _)| k == "Set-Cookie").count(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_prefix_of_a_frame_is_truncated_not_an_error() {
        for f in all_frames() {
            let bytes = encode(&f);
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]).unwrap_err(), DecodeError::Truncated, "{f:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn hostile_input_is_refused() {
        assert_eq!(decode(&[99, 0, 0, 0, 0]).unwrap_err(), DecodeError::UnknownType(99));
        assert!(matches!(decode(&[1, 0xff, 0xff, 0xff, 0xff]).unwrap_err(), DecodeError::TooLarge(_)));
        let mut hello = encode(&Frame::Hello { version: 1, secret: vec![] });
        hello[5] = b'X';
        assert_eq!(decode(&hello).unwrap_err(), DecodeError::BadMagic);
        // A count far larger than the payload must not allocate or loop.
        let mut req = vec![8u8, 0, 0, 0, 0];
        let mut payload = vec![0, 200];
        payload.extend_from_slice(&0u32.to_be_bytes());
        payload.extend_from_slice(&u32::MAX.to_be_bytes());
        req[1..5].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        req.extend_from_slice(&payload);
        assert_eq!(decode(&req).unwrap_err(), DecodeError::Truncated);
        // Trailing garbage.
        let mut end = encode(&Frame::Started);
        end.push(0);
        end[4] = 1;
        assert_eq!(decode(&end).unwrap_err(), DecodeError::Trailing(1));
        // Bad booleans and end kinds.
        assert_eq!(decode(&[11, 0, 0, 0, 1, 9]).unwrap_err(), DecodeError::BadValue(9));
        assert_eq!(decode(&[9, 0, 0, 0, 1, 2]).unwrap_err(), DecodeError::BadValue(2));
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        // A cheap deterministic fuzz pass; fuzz/ has the coverage-guided target.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20000 {
            let len = (x % 64) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            if !buf.is_empty() {
                buf[0] %= 17;
            }
            let _ = decode(&buf);
        }
    }
}
