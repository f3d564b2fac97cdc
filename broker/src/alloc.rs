//! A global allocator that keeps a malformed request from aborting the broker.
//!
//! `kafka-protocol`'s decoders reserve room for an array from the count on
//! the wire before reading its elements. Twenty bytes claiming four billion
//! elements make a request for hundreds of gigabytes; under Linux's default
//! overcommit heuristic that allocation fails and Rust aborts the process.
//! Decoding then fails at once on the missing bytes, so the memory is never
//! touched. Serving very large requests from `MAP_NORESERVE` mappings makes
//! the kernel skip that up-front check: the reservation costs only address
//! space, and the decode error closes just the offending connection.
//! Everything below the threshold goes to the system allocator unchanged.

// Unsafe is confined to this module: it implements `GlobalAlloc`, which is
// an unsafe trait, over `mmap`/`munmap`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large go to `mmap`: far above anything the
/// broker allocates on purpose per request (frames are capped by
/// `socket.request.max.bytes`, 100 MiB by default).
const LAZY_THRESHOLD: usize = 1 << 30;

/// The broker's global allocator: the system allocator, except that huge
/// allocations reserve address space without committing memory.
pub struct LazyHugeAlloc;

fn is_lazy(layout: &Layout) -> bool {
    // mmap returns page-aligned memory; stricter alignments stay with System.
    layout.size() >= LAZY_THRESHOLD && layout.align() <= 4096
}

// SAFETY: every pointer handed out is either from `System` (and returned to
// it, since `is_lazy` depends only on the layout, which dealloc receives
// unchanged) or from an `mmap` of at least `layout.size()` bytes, page
// aligned (so any alignment up to 4096 holds), released with `munmap` of the
// same length. A failed `mmap` returns null, as the trait requires.
unsafe impl GlobalAlloc for LazyHugeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_lazy(&layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            ptr.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !is_lazy(&layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // Fresh anonymous mappings are zero-filled by the kernel.
        // SAFETY: same contract as `alloc`.
        unsafe { self.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !is_lazy(&layout) {
            // SAFETY: `ptr` came from `System` with this layout.
            return unsafe { System.dealloc(ptr, layout) };
        }
        // SAFETY: `ptr` is the start of a mapping of `layout.size()` bytes made by `alloc`.
        unsafe {
            libc::munmap(ptr.cast(), layout.size());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_huge_reservation_that_is_never_touched_succeeds() {
        // 256 GiB: more than this machine's memory and swap, so the system
        // allocator would fail and abort.
        let v: Vec<u64> = Vec::with_capacity(32 << 30);
        assert!(v.capacity() >= 32 << 30);
        let mut small = Vec::with_capacity(16);
        small.push(1u8);
        assert_eq!(small, [1]);
    }
}
