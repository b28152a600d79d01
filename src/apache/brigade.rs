//! Bucket brigade helpers for what APR only offers as macros (APR_BRIGADE_INSERT_TAIL, ...).

use super::ffi;

/// Appends `e` at the tail of `bb` (APR_BRIGADE_INSERT_TAIL).
///
/// # Safety
/// `bb` must be a live brigade and `e` a live bucket that is in no brigade.
pub unsafe fn insert_tail(bb: *mut ffi::apr_bucket_brigade, e: *mut ffi::apr_bucket) {
    // SAFETY: (whole body) APR's ring uses the brigade's `list` head as a sentinel bucket whose
    // `link` coincides with `list` (link is the first field of apr_bucket, so the sentinel is the
    // address of `list` itself). This is the expansion of APR_RING_SPLICE_BEFORE on the sentinel.
    unsafe {
        let sentinel = (&raw mut (*bb).list) as *mut ffi::apr_bucket;
        let prev = (*bb).list.prev;
        (*e).link.next = sentinel;
        (*e).link.prev = prev;
        (*prev).link.next = e;
        (*bb).list.prev = e;
    }
}

/// Whether the brigade holds an EOS bucket.
///
/// # Safety
/// `bb` must be a live brigade.
pub unsafe fn has_eos(bb: *mut ffi::apr_bucket_brigade) -> bool {
    // SAFETY: walks the ring from the first bucket to the sentinel; every bucket is live while it
    // is in a live brigade. apr_bucket_type_eos is a static exported by APR.
    unsafe {
        let sentinel = (&raw mut (*bb).list) as *mut ffi::apr_bucket;
        let eos = &raw const ffi::apr_bucket_type_eos;
        let mut e = (*bb).list.next;
        while e != sentinel {
            if (*e).type_ == eos {
                return true;
            }
            e = (*e).link.next;
        }
        false
    }
}
