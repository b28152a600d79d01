//! Memory shared between the Apache parent and every process it forks afterwards.

use std::io;
use std::sync::atomic::AtomicI32;

/// `len` atomic integers in an anonymous shared mapping, all zero at first. Made in the Apache
/// parent before it forks, the same memory is seen by the Apache children and the daemon
/// processes (each process unmaps its own view when the value is dropped).
pub struct SharedI32s {
    ptr: *mut AtomicI32,
    len: usize,
}

// SAFETY: the mapping is only reached through `&[AtomicI32]`, which is Sync; the pointer stays
// valid until Drop, which needs ownership.
unsafe impl Send for SharedI32s {}
// SAFETY: as above: shared access is only through atomics.
unsafe impl Sync for SharedI32s {}

impl SharedI32s {
    pub fn new(len: usize) -> io::Result<SharedI32s> {
        let bytes = (len.max(1)) * std::mem::size_of::<AtomicI32>();
        // SAFETY: a fresh anonymous mapping; no existing memory is touched. MAP_SHARED keeps it
        // shared with children forked later; anonymous mappings are zero-filled.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0)
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedI32s { ptr: p.cast(), len: len.max(1) })
    }

    pub fn as_slice(&self) -> &[AtomicI32] {
        // SAFETY: ptr points at len zero-initialised (hence valid) AtomicI32s, page-aligned,
        // mapped until Drop.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for SharedI32s {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference to it outlives self.
        unsafe { libc::munmap(self.ptr.cast(), self.len * std::mem::size_of::<AtomicI32>()) };
    }
}

impl std::fmt::Debug for SharedI32s {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedI32s({})", self.len)
    }
}
