//! What each panel shows: which per-second arrays of a run's [`Series`] become its lines.

use crate::series::Series;

/// One panel of lines over the test's time.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// In element ids: `panel-{id}`, `series-{id}-{key}-{run}`.
    pub id: &'static str,
    /// Shown above the panel.
    pub title: &'static str,
    /// The y axis's quantity and unit.
    pub y_desc: &'static str,
    /// Whether the y axis is logarithmic (latencies span 0.1 ms to the 1.5 s timeout).
    pub log_y: bool,
    /// Its lines, every run's, in drawing order.
    pub lines: Vec<Line>,
}

/// One run's per-second values of one quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// What it is (`posts_ok`, `queue_len_a`), as the legend and its element id name it.
    pub key: String,
    /// Its place in the panel's keys: its colour in a one-run picture, its stroke otherwise.
    pub key_index: usize,
    /// Which run (index into the picture's runs).
    pub run: usize,
    /// Entry `i` is the second ending at `i + 1` s; `None` where nothing was measured.
    pub values: Vec<Option<f64>>,
}

impl Line {
    /// How many points the line draws.
    pub fn points(&self) -> usize {
        self.values.iter().flatten().count()
    }
}

/// A quantity's per-second values, named by its key.
type KeyedValues = (String, Vec<Option<f64>>);

/// One panel's definition: its id, title, y axis, and the arrays it takes from a series.
struct PanelSpec {
    id: &'static str,
    title: &'static str,
    y_desc: &'static str,
    log_y: bool,
    lines: fn(&Series) -> Vec<KeyedValues>,
}

/// The panels under the timeline, top to bottom.
const PANELS: [PanelSpec; 6] = [
    PanelSpec {
        id: "posts",
        title: "POSTs per second: answered with success, failed",
        y_desc: "POSTs/s",
        log_y: false,
        lines: |s| vec![counts("posts_ok", &s.posts_ok), counts("posts_failed", &s.posts_failed)],
    },
    PanelSpec {
        id: "latency",
        title: "POST latency per second: p50, p99, max (log scale)",
        y_desc: "ms",
        log_y: true,
        lines: |s| {
            vec![
                ("p50_ms".to_owned(), s.post_p50_ms.clone()),
                ("p99_ms".to_owned(), s.post_p99_ms.clone()),
                ("max_ms".to_owned(), s.post_max_ms.clone()),
            ]
        },
    },
    PanelSpec {
        id: "settled",
        title: "payments settled per second, by processor",
        y_desc: "payments/s",
        log_y: false,
        lines: |s| {
            vec![counts("default", &s.default_settled), counts("fallback", &s.fallback_settled)]
        },
    },
    PanelSpec {
        id: "lag",
        title: "running lag: POSTs accepted so far - payments the processors hold",
        y_desc: "payments",
        log_y: false,
        lines: |s| vec![("lag".to_owned(), s.lag.iter().map(|&v| Some(v as f64)).collect())],
    },
    PanelSpec {
        id: "backlog",
        title: "payrelay per instance: queue, forwarding, holding",
        y_desc: "payments",
        log_y: false,
        lines: |s| {
            let mut lines = Vec::new();
            for (name, instance) in &s.instances {
                for (what, values) in [
                    ("queue_len", &instance.queue_len),
                    ("forwarding", &instance.forwarding),
                    ("holding", &instance.holding),
                ] {
                    let values = values.iter().map(|v| v.map(|v| v as f64)).collect();
                    lines.push((format!("{what}_{name}"), values));
                }
            }
            lines
        },
    },
    PanelSpec {
        id: "cpu",
        title: "payrelay CPU per instance (1 = one CPU busy all second)",
        y_desc: "cores",
        log_y: false,
        lines: |s| {
            s.instances
                .iter()
                .map(|(name, instance)| (format!("cpu_{name}"), instance.cpu_cores.clone()))
                .collect()
        },
    },
];

fn counts(key: &str, values: &[u64]) -> KeyedValues {
    (key.to_owned(), values.iter().map(|&v| Some(v as f64)).collect())
}

/// The panels that have something to show for `runs` (a run without a series shows nothing):
/// a panel no run measured, such as the instances' panels of a `--target` run, is left out.
/// Within a panel, a key keeps one index across runs, so its stroke matches the legend.
pub fn panels(runs: &[Option<&Series>]) -> Vec<Panel> {
    let mut panels = Vec::new();
    for spec in &PANELS {
        let mut keys: Vec<String> = Vec::new();
        let mut lines = Vec::new();
        for (run, series) in runs.iter().enumerate() {
            let Some(series) = series else { continue };
            for (key, values) in (spec.lines)(series) {
                if values.is_empty() {
                    continue;
                }
                let key_index = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                    keys.push(key.clone());
                    keys.len() - 1
                });
                lines.push(Line { key, key_index, run, values });
            }
        }
        if !lines.is_empty() {
            panels.push(Panel {
                id: spec.id,
                title: spec.title,
                y_desc: spec.y_desc,
                log_y: spec.log_y,
                lines,
            });
        }
    }
    panels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::InstanceSeries;

    /// Goal: a run without payrelay's instances (a `--target` run) and without the lab's
    /// processors shows only the POST panels, and a run with them adds the rest; a key keeps its
    /// index across runs. Method: two hand-made series, one bare, one with an instance.
    #[test]
    fn leaves_out_what_no_run_measured() {
        let bare = Series {
            seconds: 2,
            posts_ok: vec![3, 4],
            posts_failed: vec![0, 1],
            post_p50_ms: vec![Some(0.5), None],
            post_p99_ms: vec![Some(0.9), None],
            post_max_ms: vec![Some(1.0), None],
            ..Series::default()
        };
        let ids = |panels: &[Panel]| panels.iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids(&panels(&[Some(&bare)])), ["posts", "latency"]);
        assert_eq!(ids(&panels(&[None])), Vec::<&str>::new());

        let mut full = bare.clone();
        full.default_settled = vec![2, 2];
        full.fallback_settled = vec![0, 1];
        full.lag = vec![1, 0];
        let instance = InstanceSeries {
            queue_len: vec![Some(1), None],
            forwarding: vec![Some(2), Some(3)],
            holding: vec![Some(0), Some(0)],
            cpu_cores: vec![None, Some(0.25)],
        };
        full.instances.insert("a".to_owned(), instance);
        let both = panels(&[Some(&bare), Some(&full)]);
        assert_eq!(ids(&both), ["posts", "latency", "settled", "lag", "backlog", "cpu"]);
        let latency = &both[1];
        let p99: Vec<(usize, usize)> = latency
            .lines
            .iter()
            .filter(|l| l.key == "p99_ms")
            .map(|l| (l.run, l.key_index))
            .collect();
        assert_eq!(p99, [(0, 1), (1, 1)]);
        assert_eq!(latency.lines[0].points(), 1);
        let backlog: Vec<&str> = both[4].lines.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(backlog, ["queue_len_a", "forwarding_a", "holding_a"]);
        assert_eq!(both[5].lines[0].points(), 1);
    }
}
