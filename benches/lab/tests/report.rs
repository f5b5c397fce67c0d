//! The report and the comparison, drawn from results files checked in under `tests/fixtures`:
//! `ci-short-payrelay.json`, a real `ci-short.toml` run of the payrelay pair the lab started
//! (so with the instances' series), and `ci-short-target.json`, the same scenario against a
//! pair started apart and reached with `--target` (no instance series).
//!
//! The SVG is parsed, never compared byte for byte: each series is found by its element id and
//! its points counted from the drawing itself, against the count the JSON says it must have.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use rinha_lab::report::{self, Run};
use roxmltree::{Document, Node};
use serde_json::Value;

/// A results file of `tests/fixtures`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A folder of the test's own under the temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rinha-lab-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the `rinha-lab` binary with `args`.
fn rinha_lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rinha-lab")).args(args).output().expect("rinha-lab runs")
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every series a run of the lab's own pair has: (panel, key, where the JSON keeps it).
const SERIES: [(&str, &str, &str); 16] = [
    ("posts", "posts_ok", "/series/posts_ok"),
    ("posts", "posts_failed", "/series/posts_failed"),
    ("latency", "p50_ms", "/series/post_p50_ms"),
    ("latency", "p99_ms", "/series/post_p99_ms"),
    ("latency", "max_ms", "/series/post_max_ms"),
    ("settled", "default", "/series/default_settled"),
    ("settled", "fallback", "/series/fallback_settled"),
    ("lag", "lag", "/series/lag"),
    ("backlog", "queue_len_a", "/series/instances/a/queue_len"),
    ("backlog", "forwarding_a", "/series/instances/a/forwarding"),
    ("backlog", "holding_a", "/series/instances/a/holding"),
    ("backlog", "queue_len_b", "/series/instances/b/queue_len"),
    ("backlog", "forwarding_b", "/series/instances/b/forwarding"),
    ("backlog", "holding_b", "/series/instances/b/holding"),
    ("cpu", "cpu_a", "/series/instances/a/cpu_cores"),
    ("cpu", "cpu_b", "/series/instances/b/cpu_cores"),
];

/// How many values of the array at `pointer` were measured (not `null`).
fn measured(json: &Value, pointer: &str) -> usize {
    let array = json.pointer(pointer).and_then(Value::as_array);
    array
        .unwrap_or_else(|| panic!("{pointer} in the fixture"))
        .iter()
        .filter(|v| !v.is_null())
        .count()
}

fn by_id<'a, 'input>(svg: &'a Document<'input>, id: &str) -> Option<Node<'a, 'input>> {
    svg.descendants().find(|node| node.attribute("id") == Some(id))
}

/// The points a layer draws: each polyline's coordinate pairs, and each dot.
fn points(layer: Node<'_, '_>) -> Vec<(i32, i32)> {
    let mut points = Vec::new();
    for node in layer.descendants() {
        match node.tag_name().name() {
            "polyline" => {
                for pair in node.attribute("points").unwrap_or("").split_whitespace() {
                    let (x, y) = pair.split_once(',').unwrap_or_else(|| panic!("pair {pair}"));
                    points.push((x.parse().expect("x"), y.parse().expect("y")));
                }
            }
            "circle" => {
                let at = |name| node.attribute(name).and_then(|v| v.parse().ok()).expect("centre");
                points.push((at("cx"), at("cy")));
            }
            _ => {}
        }
    }
    points
}

fn circles<'a>(layer: Node<'a, '_>) -> Vec<Node<'a, 'a>> {
    layer.descendants().filter(|node| node.has_tag_name("circle")).collect()
}

/// The ids of the document's panels, top to bottom.
fn panel_ids(svg: &Document<'_>) -> Vec<String> {
    svg.descendants()
        .filter(|node| node.attribute("class") == Some("panel"))
        .filter_map(|node| node.attribute("id").map(str::to_owned))
        .collect()
}

/// Goal: `rinha-lab report` draws every per-second series of a real run, each as a layer named
/// by its id holding exactly as many points as the JSON has measured values, on one time axis
/// shared by every panel, with the score line in the header, the stages and every check.
/// Method: the report of `ci-short-payrelay.json` (20 s, 5 checks, 5 distinct stage spans),
/// parsed as XML.
#[test]
fn report_draws_every_series_of_a_run() {
    let scratch = Scratch::new("report");
    let out = scratch.path("run.svg");
    let input = fixture("ci-short-payrelay.json");
    let ran = rinha_lab(&[
        "report",
        input.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let json: Value = serde_json::from_str(&text(&input)).expect("fixture JSON");
    let source = text(&out);
    let svg = Document::parse(&source).expect("the report is well-formed XML");

    let panels = ["header", "panel-timeline", "panel-posts", "panel-latency", "panel-settled"];
    let more = ["panel-lag", "panel-backlog", "panel-cpu"];
    assert_eq!(panel_ids(&svg), [&panels[..], &more[..]].concat());
    let mut last_x = Vec::new();
    for (panel, key, pointer) in SERIES {
        let id = format!("series-{panel}-{key}-0");
        let layer = by_id(&svg, &id).unwrap_or_else(|| panic!("{id} in the report"));
        let drawn = points(layer);
        assert_eq!(drawn.len(), measured(&json, pointer), "{id}");
        assert_eq!(drawn.len(), 20, "{id}: the fixture measured every second");
        assert_eq!(layer.attribute("data-points"), Some("20"), "{id}");
        // Time runs left to right, and the last second ends at one x in every panel.
        assert!(drawn.windows(2).all(|w| w[0].0 < w[1].0), "{id}: {drawn:?}");
        last_x.push(drawn[drawn.len() - 1].0);
    }
    assert!(last_x.iter().all(|x| *x == last_x[0]), "one time axis: {last_x:?}");
    let series_layers = svg.descendants().filter(|n| n.attribute("class") == Some("series"));
    assert_eq!(series_layers.count(), SERIES.len(), "no layer beyond the series");

    let header = by_id(&svg, "header").expect("header");
    let header_text: String = header.descendants().filter_map(|n| n.text()).collect();
    assert!(
        header_text.contains("score 35387.70 · score_ratio 0.9917 · p99 1.33 ms"),
        "{header_text}"
    );
    assert!(header_text.contains("inconsistencies 0 · lag 0 · default/fallback 1573/0"));
    assert!(header_text.contains("late landings 0"), "{header_text}");
    let checks = json.pointer("/series/checks").and_then(Value::as_array).expect("checks");
    assert_eq!(circles(by_id(&svg, "checks-clean-0").expect("clean")).len(), checks.len());
    assert_eq!(checks.len(), 5);
    assert!(circles(by_id(&svg, "checks-inconsistent-0").expect("inconsistent")).is_empty());
    // Idle to 5 s (the stage at 1 s changes nothing), then 5-8, 8-11, 11-15, 15-20: a
    // rectangle per span on each processor's row.
    let stages = by_id(&svg, "stages-0").expect("stages");
    assert_eq!(stages.descendants().filter(|n| n.has_tag_name("rect")).count(), 10);
}

/// Goal: a check that found a difference is a red mark on the timeline, with its count, and a
/// red line through every panel; the clean ones stay green. Method: the payrelay fixture with
/// one check's inconsistencies set to 4, drawn through the library.
#[test]
fn a_check_with_a_difference_is_red() {
    let mut results = report::read_results(&fixture("ci-short-payrelay.json")).expect("fixture");
    let series = results.series.as_mut().expect("series");
    series.checks[2].inconsistencies = 4;
    let source = report::render(&[Run { label: "edited", results: &results }]).expect("render");
    let svg = Document::parse(&source).expect("well-formed");
    let red = by_id(&svg, "checks-inconsistent-0").expect("inconsistent layer");
    let marks = circles(red);
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].attribute("fill"), Some("#D62728"));
    assert!(red.descendants().any(|n| n.text().is_some_and(|t| t.trim() == "4")));
    let clean = circles(by_id(&svg, "checks-clean-0").expect("clean layer"));
    assert_eq!(clean.len(), 4);
    assert!(clean.iter().all(|mark| mark.attribute("fill") == Some("#2CA02C")));
    let red_lines = svg
        .descendants()
        .filter(|n| n.attribute("class") == Some("bands"))
        .map(|bands| {
            bands
                .descendants()
                .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some("#D62728"))
                .count()
        })
        .collect::<Vec<_>>();
    assert_eq!(red_lines, [1; 6], "one red line in each panel of lines");
}

/// Goal: each run's score line in the header shows its late landings with the latest one's
/// lateness, and `-` for a run that did not count them (its processors were not the lab's
/// own), on a line of its own text. Method: the payrelay fixture with 34 late landings, the
/// latest 4002 ms late, beside the target fixture with none counted, drawn through the
/// library; the header's text elements.
#[test]
fn the_header_shows_late_landings() {
    let mut late = report::read_results(&fixture("ci-short-payrelay.json")).expect("fixture");
    late.late_landings = Some(34);
    late.late_landing_max_ms = Some(4002);
    let mut uncounted = report::read_results(&fixture("ci-short-target.json")).expect("fixture");
    uncounted.late_landings = None;
    uncounted.late_landing_max_ms = None;
    let runs =
        [Run { label: "late", results: &late }, Run { label: "uncounted", results: &uncounted }];
    let source = report::render(&runs).expect("render");
    let svg = Document::parse(&source).expect("well-formed");
    let header = by_id(&svg, "header").expect("header");
    let lines: Vec<&str> = header.descendants().filter_map(|n| n.text()).map(str::trim).collect();
    let at = |text: &str| lines.iter().position(|line| line.contains(text));
    let late_at = at("late landings 34 (latest 4002 ms)").expect("the late run's landings");
    let uncounted_at = at("late landings -").expect("the other run's");
    assert!(at("late: scenario ci-short") < Some(late_at), "{lines:?}");
    assert!(at("uncounted: scenario ci-short") < Some(uncounted_at), "{lines:?}");
    assert!(Some(late_at) < at("uncounted: scenario ci-short"), "{lines:?}");
}

/// Goal: a run against `--target` has no payrelay instance series, and its report leaves those
/// panels out rather than drawing empty ones. Method: the report of `ci-short-target.json`.
#[test]
fn a_target_run_leaves_out_the_instance_panels() {
    let results = report::read_results(&fixture("ci-short-target.json")).expect("fixture");
    let source = report::render(&[Run { label: "target", results: &results }]).expect("render");
    let svg = Document::parse(&source).expect("well-formed");
    let expected =
        ["header", "panel-timeline", "panel-posts", "panel-latency", "panel-settled", "panel-lag"];
    assert_eq!(panel_ids(&svg), expected);
    assert_eq!(points(by_id(&svg, "series-lag-lag-0").expect("lag")).len(), 20);
}

/// Goal: `rinha-lab compare` prints each key figure of both runs with the second's ratio to the
/// first (`-` where a figure is missing: no CPU for a `--target` run), and draws one picture
/// with both runs' series, the instances' only for the run that has them. Method: the two
/// fixtures, the exact table.
#[test]
fn compare_prints_the_table_and_overlays_the_runs() {
    let scratch = Scratch::new("compare");
    let out = scratch.path("cmp.svg");
    let (a, b) = (fixture("ci-short-payrelay.json"), fixture("ci-short-target.json"));
    let args = ["compare", a.to_str().expect("utf-8"), b.to_str().expect("utf-8")];
    let ran = rinha_lab(&[&args[..], &["--out", out.to_str().expect("utf-8")]].concat());
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let stdout = String::from_utf8(ran.stdout).expect("utf-8");
    let expected = "\
figure                ci-short-payrelay.json  ci-short-target.json
score                               35387.70     35387.70   x1.000
score_ratio                           0.9917       0.9917   x1.000
p99_ms                                  1.33         1.75   x1.316
post_p50_ms                            0.149        0.136   x0.913
inconsistencies                            0            0   x1.000
lag                                        0            0   x1.000
default_count                           1573         1573   x1.000
fallback_count                             0            0   x1.000
posts_ok                                1573         1573   x1.000
posts_failed                               0            0   x1.000
cpu_s                                   0.27            -        -
late_landings                              0            0   x1.000
late_landing_max_ms                        0            0   x1.000
";
    assert_eq!(stdout, format!("{expected}report: {}\n", out.display()));

    let source = text(&out);
    let svg = Document::parse(&source).expect("well-formed");
    for run in 0..2 {
        for id in [format!("series-posts-posts_ok-{run}"), format!("series-lag-lag-{run}")] {
            assert_eq!(points(by_id(&svg, &id).unwrap_or_else(|| panic!("{id}"))).len(), 20);
        }
        assert!(by_id(&svg, &format!("checks-clean-{run}")).is_some());
    }
    assert!(by_id(&svg, "series-backlog-queue_len_a-0").is_some());
    assert!(by_id(&svg, "series-backlog-queue_len_a-1").is_none(), "the target run has none");
    assert!(by_id(&svg, "series-cpu-cpu_b-1").is_none());
    let header: String =
        by_id(&svg, "header").expect("header").descendants().filter_map(|n| n.text()).collect();
    assert!(header.contains("ci-short-payrelay.json: scenario ci-short"), "{header}");
    assert!(header.contains("ci-short-target.json: scenario ci-short"), "{header}");
}

/// Goal: bad input is an error that names the file and the fault, never a panic: malformed
/// JSON, a missing key, a series longer than it says, a missing file (a failed run, exit 1); a
/// wrong number of files, an unknown option (usage errors, exit 2). Method: each through the
/// binary; the exit status and the message.
#[test]
fn bad_input_is_a_clear_error() {
    let scratch = Scratch::new("bad-input");
    let good = text(&fixture("ci-short-payrelay.json"));
    let truncated = scratch.path("truncated.json");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write");
    let mut json: Value = serde_json::from_str(&good).expect("fixture");
    let without_score = scratch.path("without-score.json");
    json.as_object_mut().expect("object").remove("score");
    std::fs::write(&without_score, json.to_string()).expect("write");
    let mut json: Value = serde_json::from_str(&good).expect("fixture");
    json["series"]["instances"]["b"]["cpu_cores"]
        .as_array_mut()
        .expect("array")
        .push(Value::from(0.5));
    let too_long = scratch.path("too-long.json");
    std::fs::write(&too_long, json.to_string()).expect("write");
    let missing = scratch.path("missing.json");
    let path = |p: &PathBuf| p.to_str().expect("utf-8").to_owned();

    let cases: [(Vec<String>, String); 4] = [
        (
            vec![path(&truncated)],
            format!("{}: not a rinha-lab results file: EOF while parsing", path(&truncated)),
        ),
        (
            vec![path(&without_score)],
            format!(
                "{}: not a rinha-lab results file: missing field `score`",
                path(&without_score)
            ),
        ),
        (
            vec![path(&too_long)],
            format!(
                "{}: series: instances.b.cpu_cores has 21 entries, more than seconds = 20",
                path(&too_long)
            ),
        ),
        (vec![path(&missing)], format!("{}: No such file or directory", path(&missing))),
    ];
    let (truncated_path, too_long_path) = (path(&truncated), path(&too_long));
    let target_path = path(&fixture("ci-short-target.json"));
    for (args, message) in cases {
        let ran = rinha_lab(
            &[&["report"], &args.iter().map(String::as_str).collect::<Vec<_>>()[..]].concat(),
        );
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Usage errors (clap's): exit 2, naming what is wrong.
    let usage_errors: [(Vec<&str>, &str); 3] = [
        (vec!["report", &truncated_path, &too_long_path], "unexpected argument"),
        (vec!["report", &truncated_path, "--width", "3"], "unexpected argument '--width'"),
        (vec!["compare", &target_path], "2 values required"),
    ];
    for (args, message) in usage_errors {
        let ran = rinha_lab(&args);
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
