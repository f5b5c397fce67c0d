//! Goal: the metrics table (`docs/observability.md`) and the code name exactly the same
//! families, and those follow Prometheus's naming rules. Method: read the first column of the
//! table, compare with `metrics::FAMILIES`; check each name, and a rendered exposition.

use std::collections::BTreeSet;

use payrelay::metrics::{CoreSnapshot, FAMILIES, Instance, Kind, ProcessStats, render};

#[test]
fn the_docs_list_exactly_the_families_the_server_exposes() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/observability.md"))
            .expect("docs/observability.md");
    let table = doc
        .split_once("| family | labels | what |")
        .map(|(_, rest)| rest)
        .expect("docs/observability.md has the metrics table");
    let documented: BTreeSet<&str> = table
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name))
        .collect();
    let code: BTreeSet<&str> = FAMILIES.iter().map(|family| family.name).collect();
    assert_eq!(
        documented, code,
        "docs/observability.md's metrics table and metrics::FAMILIES disagree"
    );
}

/// Whether `name` is a valid metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, lower case only
/// for ours.
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b':')
}

/// Goal: every family follows Prometheus's naming rules. Names match
/// `^[a-z_:][a-z0-9_:]*$`; counters end in `_total` and nothing else does; base units, so no
/// `_ms`; a histogram of durations is in `_seconds`; and no `core="all"` series (a total beside
/// the per-core series would make `sum()` count twice). Method: the names of `FAMILIES`, then
/// an exposition rendered from two cores' snapshots, line by line.
#[test]
fn families_follow_prometheus_naming_rules() {
    for family in FAMILIES {
        let name = family.name;
        assert!(valid_name(name), "{name}: not ^[a-z_:][a-z0-9_:]*$");
        let counter = family.kind == Kind::Counter;
        assert_eq!(name.ends_with("_total"), counter, "{name}: only counters end in _total");
        assert!(!name.ends_with("_ms") && !name.contains("_ms_"), "{name}: base units, seconds");
        if family.kind == Kind::Histogram {
            assert!(name.ends_with("_seconds"), "{name}: a histogram of durations in seconds");
        }
    }
    let mut cores = [CoreSnapshot { core: 1, ..Default::default() }, CoreSnapshot::default()];
    let mut out = Vec::new();
    render(&mut out, &mut cores, Instance { pid: 1, boot: 2, process: ProcessStats::read() });
    let text = String::from_utf8(out).expect("the exposition is ASCII");
    assert!(!text.contains("core=\"all\""), "no core=\"all\" series:\n{text}");
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let name_end = line.find(['{', ' ']).expect("a sample has a name");
        assert!(valid_name(&line[..name_end]), "{line}");
        if let Some(labels) = line[name_end..].strip_prefix('{') {
            let labels = &labels[..labels.find('}').expect("labels close")];
            for pair in labels.split(',') {
                let (key, value) = pair.split_once('=').expect("key=value");
                assert!(
                    valid_name(key) && value.starts_with('"') && value.ends_with('"'),
                    "{line}"
                );
            }
        }
    }
}
