//! A global allocator wrapper that keeps hostile length fields from aborting the broker.
//!
//! kafka-protocol decodes an array by reading its length `n` and calling `Vec::with_capacity(n)`
//! before decoding any element. A 14-byte request that claims 2^31 topics therefore asks the
//! allocator for ~150 GB; under Linux's default heuristic overcommit that mmap is refused, and a
//! refused allocation in Rust aborts the whole process (every shard, every connection). Decoding
//! would fail a moment later anyway, at the first missing element, without touching the memory.
//!
//! [`HugeAllocGuard`] serves allocations of at least [`HUGE`] bytes with an anonymous
//! `MAP_NORESERVE` mapping: address space only, no commit charge, so the reservation succeeds, the
//! decoder fails cleanly on the truncated body, the connection is closed with a log line, and the
//! untouched mapping is unmapped. Everything smaller (all normal traffic: frames are capped by
//! `socket.request.max.bytes`, 100 MiB by default) goes to the system allocator unchanged, at the
//! cost of one comparison. A real allocation this large that is then filled behaves like any
//! overcommitted memory (the OOM killer, not an abort, decides).
//!
//! Install it in a binary with
//! `#[global_allocator] static ALLOC: ringbolt::server::alloc::HugeAllocGuard = ringbolt::server::alloc::HugeAllocGuard;`
//! (`ringbolt serve` does; test and bench binaries that run a broker should too).

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at or above this size are reserved with `MAP_NORESERVE` mappings.
pub const HUGE: usize = 512 << 20;

const PAGE: usize = 4096;

/// See the module docs.
pub struct HugeAllocGuard;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: anonymous private mapping, no fd; the kernel picks the address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p as *mut u8
    }
}

// SAFETY: huge blocks come from mmap (page-aligned, so any align <= PAGE holds, zero-filled) and
// are returned with munmap of the same size; everything else is delegated to `System` with the
// caller's layout, as `GlobalAlloc` requires.
unsafe impl GlobalAlloc for HugeAllocGuard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // SAFETY: `map` has no precondition; a null result is the allocation failure.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: the caller's layout, passed on unchanged (non-zero size per `GlobalAlloc`).
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // SAFETY: `map` has no precondition; anonymous mappings are zero-filled.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: the caller's layout, passed on unchanged (non-zero size per `GlobalAlloc`).
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            // SAFETY: a huge layout's block came from `map` with this same size.
            unsafe { libc::munmap(ptr as *mut libc::c_void, layout.size()) };
        } else {
            // SAFETY: a small layout's block came from `System` with this same layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            // SAFETY: both sizes are small, so `ptr` came from `System` with `layout`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_layout` is valid (above) and has a non-zero size, as `realloc` requires.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: `ptr` holds `layout.size()` bytes and `new` at least `new_size`, two distinct
            // blocks; `ptr` was allocated by `self` with `layout`, and is not used after.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservation_succeeds_and_small_ones_round_trip() {
        let g = HugeAllocGuard;
        // SAFETY: every layout has a non-zero size; each pointer is checked non-null before use
        // and freed with the layout it was last (re)allocated with.
        unsafe {
            let huge = Layout::from_size_align(200 << 30, 8).unwrap(); // 200 GiB, never touched
            let p = g.alloc(huge);
            assert!(!p.is_null());
            *p = 7; // the first page is usable
            g.dealloc(p, huge);
            let small = Layout::from_size_align(64, 8).unwrap();
            let q = g.alloc(small);
            assert!(!q.is_null());
            *q = 1;
            let q = g.realloc(q, small, HUGE + 4096);
            assert_eq!(*q, 1);
            let q = g.realloc(q, Layout::from_size_align(HUGE + 4096, 8).unwrap(), 32);
            assert_eq!(*q, 1);
            g.dealloc(q, Layout::from_size_align(32, 8).unwrap());
        }
    }
}
