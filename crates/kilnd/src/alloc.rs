//! glibc allocator tuning for libtorch's allocation pattern.
//!
//! A training step allocates and frees many multi-megabyte activation and gradient tensors.
//! With glibc's defaults those go through mmap/munmap, so every step pays for fresh zeroed
//! pages (the profile showed page faults and `clear_page` among the top costs). Keeping
//! allocations under 32 MiB on the heap, and not trimming it below 256 MiB, lets freed blocks
//! be reused: the `cnn` step on CPU went from ~57 ms to ~37 ms (benches/train_vs_pytorch.rs).

/// Applies the tuning. Call first thing in `main`, before any other thread starts.
#[allow(unsafe_code)]
pub fn tune() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread exists,
    // so no allocation can race with the change.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
