//! Process-wide memory settings of the gateway's binaries.

/// Turns transparent huge pages off for this process. mimalloc advises huge pages on the arenas
/// it reserves, and a 2 MiB page is resident as soon as any byte of it is touched: the sync of a
/// 20,000-box project peaked at 153-177 MiB with them and at 110 MiB without, in the same time
/// (docs/BENCHMARKS.md). Call it first thing in `main`; it holds for threads started later and
/// for memory mapped before. Where the kernel refuses (or is not Linux), nothing changes.
pub fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE sets a flag of the calling process; no pointer is passed.
        let refused = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0;
        if refused {
            tracing::debug!("transparent huge pages stay on: the kernel refused to turn them off");
        }
    }
}
