//! Once a second during the load: how many payments each processor holds, and each payrelay
//! instance's CPU (from its `/proc`) and backlog gauges (from its `/metrics`), for the run's
//! [`crate::series::Series`].
//!
//! What a tick costs: two in-process lock-and-count reads of the processors' books, one read of
//! `/proc/<pid>/stat` per instance, and one `GET /metrics` per instance on a keep-alive
//! connection to its peer-link address (the answer is a few kilobytes of text). The instances
//! answer the scrape on their peer-link thread; next to the load's hundreds of POSTs a second
//! it is noise, and the progress line has made the same scrape every 5 s from the start.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use hyper::Method;
use tokio::time::Instant;

use crate::{
    backend::read_cpu_s,
    client::Conn,
    emulator::RecordedProbe,
    series::{InstanceSeries, Sampled, round3},
};

/// The sampling period: the series have one entry per second.
pub const TICK: Duration = Duration::from_secs(1);
/// How long one `/metrics` scrape may take: both instances scraped one after the other stay
/// inside the tick even when both time out (an instance being killed, a stalled peer thread).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_millis(400);
/// The gauges read from each instance, in [`InstanceSeries`] order: queue, forwarding, holding.
const GAUGES: [&str; 3] = ["payrelay_queue_len", "payrelay_forwarding", "payrelay_holding"];

/// One payrelay instance as the load watches it: its name, the address its `/metrics` answers on
/// (its peer link), and its current process id, which a restart changes.
#[derive(Debug, Clone)]
pub struct InstanceWatch {
    /// `a` or `b`.
    pub name: &'static str,
    /// Its peer-link address, where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// Shared with every clone, so that the crash harness's restart is seen by the sampler.
    pid: Arc<AtomicU32>,
}

impl InstanceWatch {
    /// Watches instance `name` at `metrics_addr`, now process `pid`.
    pub fn new(name: &'static str, metrics_addr: SocketAddr, pid: u32) -> InstanceWatch {
        InstanceWatch { name, metrics_addr, pid: Arc::new(AtomicU32::new(pid)) }
    }

    /// Its current process id.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Records that the instance now runs as `pid` (after a restart).
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
    }
}

/// The instance's total of a family split by nothing but `core`: the sum of its
/// `family{core="N"} VALUE` lines in a Prometheus text exposition (payrelay renders one series
/// per core and no total beside them). `None` if no core has it or a value does not parse.
pub fn metric_summed(text: &str, family: &str) -> Option<f64> {
    let prefix = format!("{family}{{core=\"");
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(prefix.as_str()) else { continue };
        let Some((core, value)) = rest.split_once("\"} ") else { continue };
        if core.is_empty() || !core.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let value: f64 = value.trim().parse().ok()?;
        total = Some(total.unwrap_or(0.0) + value);
    }
    total
}

/// Reads the processors (`recorded`, when they are the lab's own) and `instances` at the end of
/// each of the first `seconds` seconds after `started`, and returns what it read.
pub async fn record(
    recorded: Option<RecordedProbe>,
    instances: Vec<InstanceWatch>,
    started: Instant,
    seconds: usize,
) -> Sampled {
    let settled_at_start = recorded.as_ref().map(RecordedProbe::recorded_each);
    let mut settled = Vec::with_capacity(seconds);
    let mut watched: Vec<Watched> = instances.into_iter().map(Watched::new).collect();
    for tick in 1..=seconds {
        tokio::time::sleep_until(started + TICK * tick as u32).await;
        // The cheap, local readings first, so that they fall as close to the tick as possible.
        if let Some(probe) = &recorded {
            settled.push(probe.recorded_each());
        }
        for instance in &mut watched {
            let cores = instance.cpu_cores();
            instance.series.cpu_cores.push(cores);
        }
        for instance in &mut watched {
            instance.scrape().await;
        }
    }
    Sampled {
        settled: settled_at_start.map(|start| (start, settled)),
        instances: watched.into_iter().map(|w| (w.watch.name.to_owned(), w.series)).collect(),
    }
}

/// One instance's sampling state.
struct Watched {
    watch: InstanceWatch,
    conn: Conn,
    /// The previous CPU reading: pid, CPU seconds, when.
    last_cpu: Option<(u32, f64, Instant)>,
    series: InstanceSeries,
}

impl Watched {
    fn new(watch: InstanceWatch) -> Watched {
        let conn = Conn::new(watch.metrics_addr);
        let mut watched =
            Watched { watch, conn, last_cpu: None, series: InstanceSeries::default() };
        watched.cpu_cores();
        watched
    }

    /// CPU used since the previous reading, in cores; `None` when either reading failed.
    fn cpu_cores(&mut self) -> Option<f64> {
        let pid = self.watch.pid();
        let now = Instant::now();
        let cpu_s = read_cpu_s(pid);
        let cores = match (cpu_s, self.last_cpu) {
            (Some(cpu_s), Some((last_pid, last_cpu_s, last_at))) => {
                let elapsed_s = now.duration_since(last_at).as_secs_f64();
                // A restarted instance (a new pid) has used all of its CPU since the previous
                // reading: it did not exist before it.
                let used_s = if last_pid == pid { cpu_s - last_cpu_s } else { cpu_s };
                (elapsed_s > 0.0).then(|| round3(used_s.max(0.0) / elapsed_s))
            }
            _ => None,
        };
        self.last_cpu = cpu_s.map(|cpu_s| (pid, cpu_s, now));
        cores
    }

    /// Scrapes the instance's gauges into its series (`None` each when the scrape failed).
    async fn scrape(&mut self) {
        let reply = self.conn.request(Method::GET, "/metrics", &[], None, SCRAPE_TIMEOUT).await;
        let text = match reply {
            Ok(reply) if reply.status == 200 => {
                Some(String::from_utf8_lossy(&reply.body).into_owned())
            }
            _ => None,
        };
        let gauge = |family| {
            let value = metric_summed(text.as_deref()?, family)?;
            // Counts: a negative or fractional value would be a bug of the exporter's, shown
            // as the nearest count rather than hidden.
            (value.is_finite() && value >= 0.0).then(|| value.round() as u64)
        };
        let [queue_len, forwarding, holding] = GAUGES.map(gauge);
        self.series.queue_len.push(queue_len);
        self.series.forwarding.push(forwarding);
        self.series.holding.push(holding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What payrelay's `/metrics` looks like (`src/metrics/families.rs`): help and type lines,
    /// one series per core (no total), and families with more labels.
    const EXPOSITION: &str = "\
# HELP payrelay_queue_len Accepted payments waiting for a forwarding slot.
# TYPE payrelay_queue_len gauge
payrelay_queue_len{core=\"0\"} 2
payrelay_queue_len{core=\"1\"} 5
# TYPE payrelay_forwarding gauge
payrelay_forwarding{core=\"0\"} 130
# TYPE payrelay_holding gauge
payrelay_holding{core=\"0\"} x
payrelay_route{core=\"0\",decision=\"hold\"} 1
payrelay_inflight_requests{core=\"0\",processor=\"default\"} 3
";

    /// Goal: the instance total is the sum of the per-core lines of exactly the family asked
    /// for; a family with more labels, a missing family, an unreadable value and a bare name
    /// that only starts like the family give nothing. Method: an exposition shaped like
    /// payrelay's.
    #[test]
    fn reads_the_instance_total() {
        assert_eq!(metric_summed(EXPOSITION, "payrelay_queue_len"), Some(7.0));
        assert_eq!(metric_summed(EXPOSITION, "payrelay_forwarding"), Some(130.0));
        assert_eq!(metric_summed(EXPOSITION, "payrelay_holding"), None, "unreadable value");
        assert_eq!(metric_summed(EXPOSITION, "payrelay_route"), None, "more labels than core");
        assert_eq!(metric_summed(EXPOSITION, "payrelay_inflight_requests"), None);
        assert_eq!(metric_summed(EXPOSITION, "payrelay_queue"), None, "a prefix is not the family");
        assert_eq!(metric_summed(EXPOSITION, "payrelay_breaker_open"), None);
        assert_eq!(metric_summed("", "payrelay_queue_len"), None);
    }

    /// A stand-in for an instance's peer link: answers every request on every connection with
    /// [`EXPOSITION`], keep-alive, until the test's runtime stops.
    async fn serve_exposition() -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0; 1024];
                    while let Ok(read @ 1..) = stream.read(&mut buffer).await {
                        request.extend_from_slice(&buffer[..read]);
                        // A GET has no body: its headers' end is the request's end.
                        if request.ends_with(b"\r\n\r\n") {
                            request.clear();
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                                EXPOSITION.len()
                            );
                            let answer = [head.as_bytes(), EXPOSITION.as_bytes()].concat();
                            if stream.write_all(&answer).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// Goal: each second, the sampler scrapes an instance's `/metrics` into its gauges (an
    /// unreadable value is `null`, not a guess) and reads its CPU from `/proc`. Method: a
    /// server answering [`EXPOSITION`], our own process as the instance's, 2 s.
    #[test]
    fn scrapes_the_gauges_each_second() {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let sampled = runtime.block_on(async {
            let addr = serve_exposition().await;
            let watch = InstanceWatch::new("b", addr, std::process::id());
            record(None, vec![watch], Instant::now(), 2).await
        });
        let b = &sampled.instances["b"];
        assert_eq!(b.queue_len, [Some(7), Some(7)]);
        assert_eq!(b.forwarding, [Some(130), Some(130)]);
        assert_eq!(b.holding, [None, None]);
        assert!(b.cpu_cores.iter().all(|c| c.is_some_and(|c| c >= 0.0)), "{:?}", b.cpu_cores);
    }

    /// Goal: one entry per second for every instance, with CPU read from `/proc` and gauges
    /// `null` when nothing answers `/metrics`. Method: our own process as the instance, on a
    /// port nothing listens on, for 2 s.
    #[test]
    fn records_one_entry_per_second() {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        let watch = InstanceWatch::new("a", addr, std::process::id());
        let sampled = runtime.block_on(record(None, vec![watch], Instant::now(), 2));
        assert!(sampled.settled.is_none());
        let a = &sampled.instances["a"];
        assert_eq!(a.queue_len, [None, None]);
        assert_eq!(a.holding.len(), 2);
        assert_eq!(a.cpu_cores.len(), 2);
        assert!(a.cpu_cores.iter().all(|c| c.is_some_and(|c| c >= 0.0)), "{:?}", a.cpu_cores);
    }
}
