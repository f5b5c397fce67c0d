//! Goal: the tuning document and the code name exactly the same environment variables with the
//! same defaults, and the contest profile sets only variables that exist. Method: read the
//! first and fourth columns of `tuning/README.md`'s table and the keys of `tuning/contest.env`,
//! compare with `ENV_VARS` and with the start-up log line of an empty environment.

use std::collections::BTreeSet;

use payrelay::config::{Config, ENV_VARS};

fn root(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

#[test]
fn tuning_doc_lists_exactly_the_variables_the_code_reads() {
    let doc = root("tuning/README.md");
    let documented: BTreeSet<&str> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name))
        .collect();
    let code: BTreeSet<&str> = ENV_VARS.iter().copied().collect();
    assert_eq!(documented, code, "tuning/README.md and config::ENV_VARS disagree");
}

#[test]
fn tuning_doc_gives_the_defaults_the_code_uses() {
    let doc = root("tuning/README.md");
    let config = Config::from_lookup(|_| None).expect("the defaults parse");
    let line = config.to_string();
    let effective: Vec<(&str, &str)> =
        line.split(' ').filter_map(|pair| pair.split_once('=')).collect();
    for row in doc.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let name = cells[0].trim_start_matches("| `").trim_end_matches('`');
        let documented = cells[3].trim_matches('`');
        let (_, code) = effective.iter().find(|(n, _)| *n == name).expect(name);
        // The log line writes an unset address as `-` and a fraction with six decimals.
        let same = match (documented, *code) {
            ("empty", "-") => true,
            (doc, code) => match (doc.parse::<f64>(), code.parse::<f64>()) {
                (Ok(doc), Ok(code)) => doc == code,
                _ => doc == code,
            },
        };
        assert!(same, "{name}: tuning/README.md says {documented}, the code {code}");
        if name.ends_with("_MS") {
            assert!(cells[2].starts_with("ms"), "{name}: its unit column says {}", cells[2]);
        }
    }
}

#[test]
fn contest_profile_is_valid_and_uses_known_variables() {
    let profile = root("tuning/contest.env");
    let pairs: Vec<(String, String)> = profile
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (k, v) = line.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    for (key, _) in &pairs {
        assert!(ENV_VARS.contains(&key.as_str()), "{key} is not a payrelay variable");
    }
    let config =
        Config::from_lookup(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("the contest profile parses");
    assert_eq!(config.workers(), 1);
}

/// The README lists no variables itself (a second copy of the list would drift): it sends the
/// reader to the two places that list every one, `tuning/README.md` (checked above against
/// `ENV_VARS`) and `payrelay --help` (generated from the same table; `tests/cli.rs`).
#[test]
fn readme_points_to_every_variable() {
    let readme = root("README.md");
    let configuration = readme
        .split_once("## Configuration")
        .and_then(|(_, rest)| rest.split("\n## ").next())
        .expect("README.md has a Configuration section");
    for place in ["tuning/README.md", "payrelay --help", "payrelay --check"] {
        assert!(configuration.contains(place), "README's Configuration does not name {place}");
    }
}
