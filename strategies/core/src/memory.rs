//! Reading a process's memory figures from Linux's `/proc`, for the figures strategies
//! and the comparison report. Every function returns `None` where `/proc` is unavailable.

use std::fs;

/// Resident set size in bytes of `pid` (`None`: this process), from `/proc/<pid>/statm`.
pub fn resident_bytes(pid: Option<i32>) -> Option<u64> {
    let path = pid.map_or_else(|| "/proc/self/statm".to_string(), |p| format!("/proc/{p}/statm"));
    let statm = fs::read_to_string(path).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // statm counts pages; 4 KiB on every platform this project targets.
    Some(pages * 4096)
}

/// Private dirty memory of `pid` in bytes, from `/proc/<pid>/smaps_rollup`: for a forked
/// child, the pages copied on write plus the ones it allocated itself. Reading it walks
/// the process's page tables, so call it sparingly.
pub fn private_dirty_bytes(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Private_Dirty:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process has a resident size, and touching 256 MiB raises it by most of that.
    /// The margin is wide because other tests in this process may free memory meanwhile.
    #[test]
    fn resident_size_follows_allocation() {
        let before = resident_bytes(None).unwrap();
        // black_box: in a release build the optimiser would otherwise drop the block, whose
        // contents are never used, and resident memory would not move.
        let block = std::hint::black_box(vec![1u8; 256 << 20]);
        let after = resident_bytes(None).unwrap();
        assert!(after >= before + (192 << 20), "{before} -> {after}");
        assert_eq!(block[12345], 1);
        assert!(private_dirty_bytes(std::process::id() as i32).unwrap() >= 192 << 20);
    }
}
