//! Process: the standard `process_*` metrics of the process that answers a scrape, read from
//! `/proc` at scrape time only (one small file; nothing on the hot path). A value that cannot be
//! read is left out of the exposition rather than made up.
//!
//! `process_open_fds` is not among them: counting descriptors means listing `/proc/self/fd`,
//! one entry per connection, on the thread of the core that answers the scrape: ~0.5 ms with
//! 1,400 descriptors open (an instance in the lab's creep timeline), during which that core
//! answers no `POST /payments`, and 3.4% of payrelay's CPU in that timeline, scraped once a
//! second by the lab's sampler. `payrelay_connections_open` counts what varies.

use std::{fs, sync::OnceLock};

/// What the kernel says of this process, at one scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time since the process started, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// When the process started, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self/stat`, and `/proc/stat`'s boot time once.
    pub fn read() -> ProcessStats {
        // The boot time never changes: `/proc/stat` (a line per CPU and more) is read by the
        // first scrape only, and its `btime` line kept.
        static BOOT: OnceLock<String> = OnceLock::new();
        let boot = BOOT.get_or_init(|| {
            let text = fs::read_to_string("/proc/stat").unwrap_or_default();
            text.lines().filter(|line| line.starts_with("btime ")).collect()
        });
        let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // SAFETY: sysconf only reads a system constant.
        let (ticks_per_s, page_bytes) =
            unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        from_proc(&stat, boot, ticks_per_s.max(0) as u64, page_bytes.max(0) as u64)
    }
}

/// The stats in `/proc/self/stat`'s text `stat` and `/proc/stat`'s text `boot` (its `btime`),
/// with `ticks_per_s` clock ticks a second and pages of `page_bytes`.
fn from_proc(stat: &str, boot: &str, ticks_per_s: u64, page_bytes: u64) -> ProcessStats {
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Field n of proc(5) (1-based) is fields[n - 3] here.
    let field = |n: usize| fields.get(n - 3).and_then(|text| text.parse::<u64>().ok());
    let per_s = (ticks_per_s > 0).then_some(ticks_per_s as f64);
    let cpu_seconds = match (field(14), field(15), per_s) {
        (Some(utime), Some(stime), Some(per_s)) => Some((utime + stime) as f64 / per_s),
        _ => None,
    };
    let resident_bytes = field(24).filter(|_| page_bytes > 0).map(|pages| pages * page_bytes);
    let boot_s =
        boot.lines().find_map(|line| line.strip_prefix("btime ")?.trim().parse::<u64>().ok());
    let start_time_seconds = match (boot_s, field(22), per_s) {
        (Some(boot_s), Some(ticks), Some(per_s)) => Some(boot_s as f64 + ticks as f64 / per_s),
        _ => None,
    };
    ProcessStats { cpu_seconds, resident_bytes, start_time_seconds }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the fields are read by their place after the command name, whatever the name
    /// holds, and a text that is not a stat line gives nothing. Method: a stat line of proc(5)'s
    /// layout with a command name holding spaces and parentheses.
    #[test]
    fn reads_proc_stat() {
        let stat = "42 (pay (re) lay) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 \
                    1000 12345678 2560 18446744073709551615 0";
        let stats = from_proc(stat, "cpu 1 2 3\nbtime 1700000000\n", 100, 4096);
        assert_eq!(stats.cpu_seconds, Some(3.0));
        assert_eq!(stats.resident_bytes, Some(2560 * 4096));
        assert_eq!(stats.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(from_proc("", "", 100, 4096), ProcessStats::default());
    }

    /// Goal: this process's own stats read as plausible values.
    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read();
        assert!(stats.cpu_seconds.is_some_and(|s| s >= 0.0), "{stats:?}");
        assert!(stats.resident_bytes.is_some_and(|b| b > 1 << 20), "{stats:?}");
        assert!(stats.start_time_seconds.is_some_and(|s| s > 1.6e9), "{stats:?}");
    }
}
