//! Giving freed heap back to the system. glibc's allocator keeps memory freed in the middle
//! of its heaps (closed connections' buffers, parked ones'), so RSS would stay at its peak
//! after a wave of connections; `release_free_heap` asks it to return every free page.

/// Returns the allocator's free pages to the system (`malloc_trim(0)`), where the C library
/// has one (glibc); elsewhere does nothing.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn resident_mib() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096 / (1 << 20)
    }

    /// Set in the child process the test runs its measurement in.
    const ALONE: &str = "CLERK_GATEWAY_MEMORY_TEST_ALONE";

    #[test]
    fn freed_memory_between_live_blocks_goes_back() {
        // RSS is the whole process's: other tests allocating on their threads would move it,
        // so the measurement runs in a child process of this test binary, on its own.
        if std::env::var_os(ALONE).is_none() {
            let name = "memory::tests::freed_memory_between_live_blocks_goes_back";
            let exe = std::env::current_exe().unwrap();
            let child = std::process::Command::new(exe).args(["--exact", name, "--nocapture"]).env(ALONE, "1").output();
            let child = child.unwrap();
            let output = String::from_utf8_lossy(&child.stdout).into_owned() + &String::from_utf8_lossy(&child.stderr);
            assert!(child.status.success() && output.contains("1 passed"), "{output}");
            return;
        }
        // 8 KiB buffers with a small live block after each: freeing the buffers leaves holes
        // that glibc alone never returns.
        let mut buffers = Vec::new();
        let mut live = Vec::new();
        for i in 0..16_384 {
            buffers.push(vec![1u8; 8 * 1024]);
            live.push(vec![i as u8; 64]);
        }
        let before = resident_mib();
        drop(buffers);
        release_free_heap();
        let after = resident_mib();
        assert!(before >= after + 64, "{before} MiB before, {after} MiB after");
        assert!(live.iter().enumerate().all(|(i, v)| v.iter().all(|b| *b == i as u8)));
    }
}
