//! Resource budgets: how much memory one piece of work may ask for, and how many threads a
//! command may start. Both are checked before the work starts, so a flag that is valid but too
//! large for this machine (`--rff 1048576`, `--pca 2` on 128x128 images, `--threads 100000`) is
//! a one-line error or a capped count, never an allocation failure that aborts the process or a
//! machine brought to a halt.
//!
//! * **Memory**: [`memory_budget`] is `HOGSVM_MEMORY_BUDGET` when set (bytes, or with a `K`,
//!   `M`, `G` or `T` suffix, powers of 1024), else three quarters of the memory this process can
//!   have (the smaller of the machine's `MemTotal` and the cgroup's `memory.max`), else 8 GiB
//!   where neither can be read. Work whose estimate ([`check_memory`]) is over it is refused
//!   with an [`Error::Memory`] naming what would allocate it.
//! * **Threads**: at most [`MAX_THREADS_PER_CORE`] per core ([`cap_threads`]); a request above
//!   is capped, with a warning the caller prints. Results do not depend on the thread count, so
//!   the cap changes nothing but the time.

use crate::error::{Error, Result};

/// Threads allowed per core (see [`cap_threads`]).
pub const MAX_THREADS_PER_CORE: usize = 4;

/// Memory assumed when neither `/proc/meminfo` nor the cgroup limit can be read.
pub const FALLBACK_MEMORY: u64 = 8 << 30;

/// The environment variable that sets the memory budget.
pub const MEMORY_BUDGET_VAR: &str = "HOGSVM_MEMORY_BUDGET";

/// A memory budget and where it comes from (for the error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Bytes allowed for one piece of work.
    pub bytes: u64,
    /// Where the figure comes from, in words.
    pub source: String,
}

/// Parse a byte count: digits with an optional `K`, `M`, `G` or `T` suffix (powers of 1024;
/// a trailing `B` or `iB` is accepted).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.chars().last()?.to_ascii_uppercase() {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let v: f64 = num.trim().parse().ok()?;
    if !(v.is_finite() && v > 0.0) {
        return None;
    }
    let bytes = v * (1u64 << shift) as f64;
    (bytes < u64::MAX as f64).then_some(bytes as u64)
}

pub use crate::error::human_bytes as human;

/// Memory this process can have: the machine's `MemTotal`, or the cgroup's limit when smaller.
fn available_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// The memory budget of one piece of work (see the [module docs](self)). An unreadable
/// `HOGSVM_MEMORY_BUDGET` is an error naming it.
pub fn memory_budget() -> Result<MemoryBudget> {
    if let Ok(v) = std::env::var(MEMORY_BUDGET_VAR) {
        let bytes = parse_bytes(&v).ok_or_else(|| {
            Error::param(
                MEMORY_BUDGET_VAR,
                "a byte count such as 8G, 512M or 1000000",
                &v,
            )
        })?;
        return Ok(MemoryBudget {
            bytes,
            source: format!("{MEMORY_BUDGET_VAR}={v}"),
        });
    }
    Ok(match available_memory() {
        Some(m) => MemoryBudget {
            bytes: m / 4 * 3,
            source: format!(
                "3/4 of this machine's {}; set {MEMORY_BUDGET_VAR} to change it",
                human(m)
            ),
        },
        None => MemoryBudget {
            bytes: FALLBACK_MEMORY,
            source: format!("memory unknown; set {MEMORY_BUDGET_VAR} to change it"),
        },
    })
}

/// Refuse work that needs `needed` bytes when that is over the [`memory_budget`]: an
/// [`Error::Memory`] naming `what` and saying what to change (`hint`).
pub fn check_memory(what: impl Into<String>, needed: u64, hint: &str) -> Result<()> {
    let budget = memory_budget()?;
    if needed > budget.bytes {
        return Err(Error::Memory {
            what: what.into(),
            needed,
            budget: budget.bytes,
            budget_source: budget.source,
            hint: hint.into(),
        });
    }
    Ok(())
}

/// `a * b * c ...` bytes, saturating (an estimate over `u64` is over any budget anyway).
pub fn bytes_of(factors: &[usize]) -> u64 {
    factors
        .iter()
        .fold(1u64, |acc, &f| acc.saturating_mul(f as u64))
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The thread count to use for a request of `requested` (`None`: all cores): at most
/// [`MAX_THREADS_PER_CORE`] per core. The second value is a warning to print when the request
/// was capped.
pub fn cap_threads(requested: Option<usize>) -> (usize, Option<String>) {
    let cores = cores();
    let max = MAX_THREADS_PER_CORE * cores;
    match requested {
        None => (cores, None),
        Some(n) if n > max => (
            max,
            Some(format!(
                "{n} threads requested; using {max} ({MAX_THREADS_PER_CORE} per core on {cores} \
                 core{})",
                if cores == 1 { "" } else { "s" }
            )),
        ),
        Some(n) => (n, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_and_print() {
        assert_eq!(parse_bytes("8G"), Some(8 << 30));
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("1.5k"), Some(1536));
        assert_eq!(parse_bytes("1000"), Some(1000));
        for bad in ["", "G", "-1G", "0", "lots", "nanG"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
        assert_eq!(human(1536 << 20), "1.5 GiB");
        assert_eq!(human(300 << 20), "300 MiB");
        assert_eq!(human(100), "100 B");
        assert_eq!(bytes_of(&[usize::MAX, 4]), u64::MAX);
    }

    #[test]
    fn thread_requests_are_capped_at_a_multiple_of_the_cores() {
        let max = MAX_THREADS_PER_CORE * cores();
        assert_eq!(cap_threads(Some(1)), (1, None));
        assert_eq!(cap_threads(None).0, cores());
        let (n, warn) = cap_threads(Some(100_000));
        assert_eq!(n, max);
        assert!(warn.unwrap().contains("100000 threads requested"));
    }

    #[test]
    fn work_over_the_budget_is_refused_with_its_name() {
        let b = memory_budget().unwrap();
        assert!(b.bytes > 0);
        let e = check_memory("`rff` with 1048576 components", u64::MAX, "use fewer")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`rff` with 1048576 components needs about"),
            "{e}"
        );
        assert!(e.contains("use fewer"), "{e}");
        assert!(check_memory("a little", 1, "").is_ok());
    }
}
