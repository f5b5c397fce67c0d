//! What `/proc` tells about a process: its resource use, its resident memory, and the sockets
//! it holds or that listen on a port.

use std::{collections::HashSet, fs, path::Path, time::Duration};

/// Resource use of one instance, read from `/proc` before it is stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Peak resident memory (VmHWM), MB.
    pub rss_mb_max: f64,
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
}

/// Peak RSS and CPU time of a process.
pub fn read_usage(pid: u32) -> Option<Usage> {
    let rss_mb_max = status_mb(pid, "VmHWM")?;
    Some(Usage { rss_mb_max, cpu_s: read_cpu_s(pid)? })
}

/// User + system CPU time of a process so far, seconds; `None` once it has exited.
pub fn read_cpu_s(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime
    // are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_s = if ticks_per_s > 0 { ticks_per_s as f64 } else { 100.0 };
    Some(ticks / ticks_per_s)
}

/// CPU time a process has used so far, to the nanosecond: the sum over its threads of their time
/// on a CPU (`/proc/<pid>/task/*/schedstat`, first field), so that a few seconds' difference
/// is meaningful, which the 10 ms ticks of [`read_cpu_s`] are not. A thread that exits takes
/// its time with it: compare two reads only for processes whose threads live throughout
/// (payrelay's cores, the canned server's runtime). On a kernel without schedstat, falls back to
/// the ticks. `None` once the process has exited.
pub fn read_cpu_time(pid: u32) -> Option<Duration> {
    if !Path::new(&format!("/proc/{pid}/schedstat")).exists() {
        // Exited (then `None`), or a kernel without schedstat (CONFIG_SCHED_INFO off).
        return read_cpu_s(pid).map(Duration::from_secs_f64);
    }
    let mut on_cpu_ns: u64 = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        // A thread that exits between the listing and the read is skipped: its time is gone.
        let Ok(text) = fs::read_to_string(task.ok()?.path().join("schedstat")) else { continue };
        on_cpu_ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(on_cpu_ns))
}

/// Current resident memory (VmRSS) of a process, MB; `None` once it has exited.
pub fn read_rss_mb(pid: u32) -> Option<f64> {
    status_mb(pid, "VmRSS")
}

/// A memory field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`, ...), MB; `None` once the
/// process has exited.
fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Inodes of the TCP sockets (IPv4 and IPv6) listening on any of `ports`, from `/proc/net`.
pub fn listening_inodes(ports: &[u16]) -> HashSet<u64> {
    /// `st` of a listening socket in `/proc/net/tcp`.
    const TCP_LISTEN: &str = "0A";
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else { continue };
        // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode.
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 || fields[3] != TCP_LISTEN {
                continue;
            }
            let port = fields[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if port.is_some_and(|p| ports.contains(&p))
                && let Ok(inode) = fields[9].parse()
            {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

/// Inodes of the sockets a process holds open (its `/proc/<pid>/fd` links `socket:[inode]`);
/// empty once it has exited.
pub fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::{net::TcpListener, thread, time::Duration};

    use super::*;

    /// Goal: usage and current RSS are readable for a live process and absent for a gone one.
    /// Method: read our own, then a pid past the kernel's maximum.
    #[test]
    fn reads_own_usage() {
        let usage = read_usage(std::process::id()).expect("usage");
        assert!(usage.rss_mb_max > 0.0);
        let rss = read_rss_mb(std::process::id()).expect("rss");
        assert!(rss > 0.0 && rss <= usage.rss_mb_max + 1.0, "rss {rss} hwm {}", usage.rss_mb_max);
        assert_eq!(read_rss_mb(u32::MAX), None);
        assert!(read_cpu_s(std::process::id()).is_some_and(|cpu| cpu >= 0.0));
        assert_eq!(read_cpu_s(u32::MAX), None);
    }

    /// This thread's own CPU time, from the kernel's clock for it.
    fn thread_cpu_time() -> Duration {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec, which `now` is, and keeps no pointer.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        assert_eq!(status, 0, "clock_gettime");
        Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
    }

    /// Goal: the precise CPU time counts the work done, below the 10 ms ticks' resolution, and
    /// is absent for a gone process. Method: spin until this thread has used 40 ms of CPU by
    /// the kernel's own clock for it (however long that takes on a busy machine), then compare
    /// our process's reads; schedstat may trail the running thread by one scheduler tick (at
    /// most 10 ms), hence 25 ms.
    #[test]
    fn cpu_time_counts_work_done() {
        let pid = std::process::id();
        let before = read_cpu_time(pid).expect("cpu time");
        let spun_from = thread_cpu_time();
        let mut x: u64 = 1;
        while thread_cpu_time() - spun_from < Duration::from_millis(40) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = read_cpu_time(pid).expect("cpu time").saturating_sub(before);
        assert!(used >= Duration::from_millis(25), "{used:?} for 40 ms of spinning");
        assert_eq!(read_cpu_time(u32::MAX), None);
    }

    /// Goal: a listening socket is found by port in `/proc/net` under the inode its process
    /// holds, and is gone once closed. Method: a listener of our own on an ephemeral port.
    #[test]
    fn finds_listening_sockets_and_their_owner() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let listening = listening_inodes(&[port]);
        assert_eq!(listening.len(), 1, "{listening:?}");
        let ours = socket_inodes(std::process::id());
        assert!(listening.is_subset(&ours), "{listening:?} not in {ours:?}");
        drop(listener);
        // A test running in parallel may fork a child between our bind and its exec: the child
        // holds a copy of the socket (close-on-exec) for a moment, so poll rather than assert.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !listening_inodes(&[port]).is_empty() {
            assert!(std::time::Instant::now() < deadline, "port {port} still listening");
            thread::sleep(Duration::from_millis(5));
        }
        assert!(socket_inodes(u32::MAX).is_empty());
    }
}
