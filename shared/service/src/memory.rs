//! The process's memory footprint.

/// Faults this process's memory in small (4 KiB) pages from now on, never in transparent
/// huge pages.
///
/// mimalloc reserves its arenas (1 GiB at a time) with `madvise(MADV_HUGEPAGE)`, so on a
/// kernel whose THP mode is `madvise` (the common default) the first touch of any 2 MiB
/// stretch of an arena faults in a whole 2 MiB page, however little of it a thread's heap
/// uses. Each runtime, HTTP worker and blocking thread touches stretches of its own: an
/// idle all-in-one held 49 MiB, 28 MiB of it in such pages, and an upload added more. The
/// request path's working set is small and gains nothing measurable from huge pages.
///
/// Pages already faulted in stay as they are, so the earlier this runs the better; calling
/// it again does nothing more. It affects this process (and children it starts) only.
pub fn keep_small_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(),
            "cannot turn transparent huge pages off for this process");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn after_keep_small_pages_the_kernel_reports_huge_pages_off() {
        super::keep_small_pages();
        // SAFETY: PR_GET_THP_DISABLE only returns the flag.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }
}
