//! Goal: the README's metrics table and the code name exactly the same families. Method: read
//! the first column of the table under "## Observability", compare with `metrics::FAMILIES`.

use std::collections::BTreeSet;

use payrelay::metrics::FAMILIES;

#[test]
fn readme_lists_exactly_the_families_the_server_exposes() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let table = readme
        .split_once("| family | labels | what |")
        .map(|(_, rest)| rest)
        .expect("README.md has the metrics table");
    let documented: BTreeSet<&str> = table
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name))
        .collect();
    let code: BTreeSet<&str> = FAMILIES.iter().map(|family| family.name).collect();
    assert_eq!(documented, code, "README.md's metrics table and metrics::FAMILIES disagree");
}
