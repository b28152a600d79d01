//! Fuzzes the daemon protocol's decoder: any bytes from a peer must give a frame or an error,
//! never a panic, a hang or an allocation out of proportion to the input; a decoded frame must
//! encode back to the bytes it came from.
#![no_main]

// The protocol module is pure Rust with no dependency on Apache or Python: include it by path.
#[path = "../../src/protocol/mod.rs"]
#[allow(dead_code)]
mod protocol;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok((frame, used)) = protocol::decode(rest) {
        assert!(used > 0 && used <= rest.len());
        assert_eq!(protocol::encode(&frame), &rest[..used], "re-encoding differs");
        rest = &rest[used..];
    }
});
