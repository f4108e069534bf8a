//! A counting global allocator, for the bytes-per-key examples: the system allocator
//! (glibc malloc on Linux), counting live bytes requested (`Layout::size`), live bytes
//! usable (`malloc_usable_size(3)`: the request rounded up to its chunk size) and live
//! chunks. An example installs it with
//! `#[global_allocator] static ALLOC: Counting = Counting;` and reads [`snapshot`].

#![allow(unsafe_code)] // A counting allocator is an `unsafe impl`; see the SAFETY notes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting live bytes requested, live bytes usable, live chunks.
pub struct Counting;

static REQUESTED: AtomicU64 = AtomicU64::new(0);
static USABLE: AtomicU64 = AtomicU64::new(0);
static CHUNKS: AtomicU64 = AtomicU64::new(0);

/// What glibc gave for the live allocation at `p` (`malloc_usable_size(3)`), bytes.
pub fn usable(p: *const u8) -> u64 {
    // SAFETY: `p` is a live pointer returned by the system allocator (glibc malloc), which
    // is what malloc_usable_size accepts.
    unsafe { libc::malloc_usable_size(p as *mut libc::c_void) as u64 }
}

fn count_in(p: *mut u8, size: usize) {
    if !p.is_null() {
        REQUESTED.fetch_add(size as u64, Ordering::Relaxed);
        USABLE.fetch_add(usable(p), Ordering::Relaxed);
        CHUNKS.fetch_add(1, Ordering::Relaxed);
    }
}

fn count_out(p: *mut u8, size: usize) {
    REQUESTED.fetch_sub(size as u64, Ordering::Relaxed);
    USABLE.fetch_sub(usable(p), Ordering::Relaxed);
    CHUNKS.fetch_sub(1, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's own arguments; the counting
// only reads the pointers `System` returned, while they are live.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System.alloc` shares.
        let p = unsafe { System.alloc(l) };
        count_in(p, l.size());
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(l) };
        count_in(p, l.size());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count_out(p, l.size());
        // SAFETY: `p` came from this allocator (so from `System`) with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        count_out(p, l.size());
        // SAFETY: `p` came from `System` with layout `l`; the caller upholds the rest.
        let q = unsafe { System.realloc(p, l, new_size) };
        if q.is_null() {
            // The old block is still live.
            count_in(p, l.size());
        } else {
            count_in(q, new_size);
        }
        q
    }
}

/// Live (bytes requested, bytes usable, chunks) now, when [`Counting`] is the global allocator.
pub fn snapshot() -> (u64, u64, u64) {
    (REQUESTED.load(Ordering::Relaxed), USABLE.load(Ordering::Relaxed), CHUNKS.load(Ordering::Relaxed))
}
