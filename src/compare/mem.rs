//! Peak memory of the process, per pipeline: Linux lets a process reset its peak resident set
//! size (`echo 5 > /proc/self/clear_refs`, Linux 4.0 and later) and read it back (`VmHWM` in
//! `/proc/self/status`). Elsewhere both answer `None`, and the report says so.

/// How the peak is measured, in words, for the report.
pub const METHOD: &str = "peak RSS of the whole process during this pipeline's training and \
evaluation: VmHWM from /proc/self/status after resetting it with `5` > /proc/self/clear_refs \
(includes the loaded datasets and anything else the process holds)";

/// Reset the peak resident set size to the current one. Returns whether it worked.
pub fn reset_peak() -> bool {
    #[cfg(target_os = "linux")]
    {
        std::fs::write("/proc/self/clear_refs", b"5").is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

fn status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&text, key)
}

/// The value of `key` (e.g. `VmHWM`) in `/proc/self/status` text, in bytes.
pub fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.split_once(':').is_some_and(|(k, _)| k.trim() == key))?;
    let (_, v) = line.split_once(':')?;
    let mut parts = v.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(n * 1024),
        _ => None,
    }
}

/// Peak resident set size since the last reset (or the process start), bytes.
pub fn peak_rss() -> Option<u64> {
    status_kib("VmHWM")
}

/// Current resident set size, bytes.
pub fn current_rss() -> Option<u64> {
    status_kib("VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let t = "Name:\thogsvm\nVmHWM:\t  123456 kB\nVmRSS:\t    1000 kB\n";
        assert_eq!(parse_status_kib(t, "VmHWM"), Some(123456 * 1024));
        assert_eq!(parse_status_kib(t, "VmRSS"), Some(1000 * 1024));
        assert_eq!(parse_status_kib(t, "VmSwap"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reset_lowers_the_peak() {
        let before = current_rss().unwrap();
        {
            let big = vec![1u8; 64 << 20];
            std::hint::black_box(&big);
        }
        let high = peak_rss().unwrap();
        assert!(high >= before);
        if reset_peak() {
            // After the reset the peak is the current RSS (the 64 MiB was freed).
            assert!(peak_rss().unwrap() <= high);
        }
    }
}
