//! The drawing: each layer a plotters SVG of its own, stacked into one document (see the
//! module [`crate::report`] for why).

use std::{fmt::Display, ops::Range};

use plotters::{
    coord::{Shift, types::RangedCoordf64},
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{
    panels::{Line, Panel},
    run::Run,
};
use crate::{
    results::Results,
    scenario::{ProcessorState, Stage},
    series::Series,
};

/// The picture's width, px: a laptop screen's, so a 300 s run gets about 3.5 px per second.
pub const WIDTH_PX: u32 = 1200;
/// Height of a panel of lines, px (title, plot, time axis).
const PANEL_PX: u32 = 190;
/// Room above a plot for its title and legend, px.
const TITLE_PX: u32 = 26;
/// Room under a plot for the time axis's labels, px.
const X_LABELS_PX: u32 = 34;
/// Room left of a plot for the y axis's labels and description, px.
const Y_LABELS_PX: u32 = 72;
/// Room right of a plot, px.
const RIGHT_PX: u32 = 24;
/// Height of one timeline row, px.
const ROW_PX: u32 = 24;
/// Height of one header text line, px.
const HEADER_LINE_PX: u32 = 20;
/// Left margin of the header's text, px.
const HEADER_LEFT_PX: u32 = 12;
/// Rough width of a character of the header's 14 px score line, px: DejaVu Sans's, the widest
/// of the usual sans-serif defaults, so that a line cut to fit does fit wherever it is opened
/// (plotters leaves the text's layout to the browser).
const HEADER_CHAR_PX: u32 = 8;
/// Between the figures of a score line.
const SCORE_SEPARATOR: &str = " · ";
/// Rough width of a character of the 12 px labels, px: plotters' SVG backend leaves the text's
/// layout to the browser, so legends are placed from an estimate.
const CHAR_PX: u32 = 7;
/// Latencies under this are drawn at it on the log scale: the lab measures in microseconds and
/// nothing answers on loopback in under 10 µs, so a lower value is a rounding artefact.
const LATENCY_FLOOR_MS: f64 = 0.01;
/// A stage whose processor delay reaches this is shaded as slow in every panel: below it, a
/// processor at the contest's rate (about 600 payments/s) holds at most 60 payments in
/// flight, far from its 800 slots, and a backend barely feels it.
const SLOW_DELAY_MS: i64 = 100;
/// The runs' colours (Tableau 10), one per run in a comparison or one per key in a single run.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];
/// A check that found a difference, and a failing processor.
const ALARM: RGBColor = RGBColor(214, 39, 40);
/// A check that found none.
const CLEAN: RGBColor = RGBColor(44, 160, 44);
/// Every text's font family: the browser's own sans-serif, since the file embeds no font.
const FONT: &str = "sans-serif";

/// A part of the document (the header, a panel): its height and its layers, placed at its top.
#[derive(Debug, Clone)]
pub struct Block {
    /// Height, px.
    pub height_px: u32,
    /// `<g id=... transform=...>` holding its layers.
    pub body: String,
}

/// A panel's coordinates: its height, the shared time axis and its own y range.
struct Frame {
    height_px: u32,
    x_max_s: f64,
    y: Range<f64>,
}

type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A plotters error as text.
fn drawing(error: impl Display) -> String {
    format!("drawing the report: {error}")
}

/// One layer: what `draw` puts on an empty drawing of `size`, as SVG text.
fn layer(
    size: (u32, u32),
    draw: impl FnOnce(&Root<'_>) -> Result<(), String>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// One layer of a panel: `draw` gets the panel's chart, built the same way in every layer so
/// that the layers line up.
fn chart_layer(
    frame: &Frame,
    draw: impl FnOnce(&Root<'_>, &mut Chart<'_, '_>) -> Result<(), String>,
) -> Result<String, String> {
    layer((WIDTH_PX, frame.height_px), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin_top(TITLE_PX)
            .margin_right(RIGHT_PX)
            .x_label_area_size(X_LABELS_PX)
            .y_label_area_size(Y_LABELS_PX)
            .build_cartesian_2d(0.0..frame.x_max_s, frame.y.clone())
            .map_err(drawing)?;
        draw(root, &mut chart)
    })
}

/// Layers stacked in one block at `top_px`, each in a `<g>` with the given attributes.
fn block(id: &str, top_px: u32, height_px: u32, layers: Vec<(String, String)>) -> Block {
    let mut body = format!("<g id=\"{id}\" class=\"panel\" transform=\"translate(0,{top_px})\">\n");
    for (attributes, svg) in layers {
        body.push_str(&format!("<g {attributes}>\n{svg}</g>\n"));
    }
    body.push_str("</g>\n");
    Block { height_px, body }
}

/// The whole document: a white page under `blocks`.
pub fn document(blocks: &[Block], height_px: u32) -> Result<String, String> {
    let page = layer((WIDTH_PX, height_px), |root| root.fill(&WHITE).map_err(drawing))?;
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{WIDTH_PX}\" height=\"{height_px}\" viewBox=\"0 0 {WIDTH_PX} {height_px}\">\n\
         <g id=\"page\">\n{page}</g>\n"
    );
    for block in blocks {
        out.push_str(&block.body);
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// The figures of a run's score line, as the header shows them: the score and what makes it,
/// the split, the failures, and the late landings (`-` where the processors were not the
/// lab's own), with the latest one's lateness.
fn score_figures(results: &Results) -> Vec<String> {
    let settled = results.default_count + results.fallback_count;
    let default_percent =
        if settled > 0 { 100.0 * results.default_count as f64 / settled as f64 } else { 0.0 };
    let late = match (results.late_landings, results.late_landing_max_ms) {
        (None, _) => "late landings -".to_owned(),
        (Some(0), _) => "late landings 0".to_owned(),
        (Some(count), Some(max_ms)) => format!("late landings {count} (latest {max_ms} ms)"),
        (Some(count), None) => format!("late landings {count}"),
    };
    vec![
        format!("score {:.2}", results.score),
        format!("score_ratio {:.4}", results.score_ratio),
        format!("p99 {:.2} ms", results.p99_ms),
        format!("inconsistencies {}", results.inconsistencies),
        format!("lag {}", results.lag),
        format!(
            "default/fallback {}/{} ({default_percent:.1}% default)",
            results.default_count, results.fallback_count
        ),
        format!("failed POSTs {}", results.posts_failed),
        late,
    ]
}

/// A run's score line, its figures joined by ` · `, cut between figures into lines that fit
/// the picture's width: a final's figures are long enough to overflow one line, and each layer
/// is a nested `<svg>`, which clips what overflows.
fn score_lines(results: &Results) -> Vec<String> {
    let chars_max = ((WIDTH_PX - 2 * HEADER_LEFT_PX) / HEADER_CHAR_PX) as usize;
    let mut lines: Vec<String> = Vec::new();
    for figure in score_figures(results) {
        match lines.last_mut() {
            Some(line)
                if line.chars().count()
                    + SCORE_SEPARATOR.chars().count()
                    + figure.chars().count()
                    <= chars_max =>
            {
                line.push_str(SCORE_SEPARATOR);
                line.push_str(&figure);
            }
            _ => lines.push(figure),
        }
    }
    lines
}

/// The header: per run, its name and what it ran (in its colour when there are several), then
/// its score line, on as many lines as it needs.
pub fn header(runs: &[Run<'_>]) -> Result<Block, String> {
    let score_lines: Vec<Vec<String>> = runs.iter().map(|run| score_lines(run.results)).collect();
    let lines: u32 = score_lines.iter().map(|lines| 1 + lines.len() as u32).sum();
    let height_px = 8 + HEADER_LINE_PX * lines;
    let svg = layer((WIDTH_PX, height_px), |root| {
        let mut top = 8;
        for (index, (run, score_lines)) in runs.iter().zip(score_lines).enumerate() {
            let colour = if runs.len() > 1 { PALETTE[index] } else { RGBColor(0, 0, 0) };
            let results = run.results;
            let mut title = format!(
                "{}: scenario {}, started {}, target {}",
                run.label, results.scenario, results.started_at, results.target
            );
            if results.series.is_none() {
                title.push_str(" (no per-second series in this file)");
            }
            let bold = (FONT, 15).into_font().style(FontStyle::Bold).color(&colour);
            let at = (HEADER_LEFT_PX as i32, top as i32);
            root.draw(&Text::new(title, at, bold)).map_err(drawing)?;
            for line in score_lines {
                top += HEADER_LINE_PX;
                let plain = (FONT, 14).into_font().color(&BLACK);
                let at = (HEADER_LEFT_PX as i32, top as i32);
                root.draw(&Text::new(line, at, plain)).map_err(drawing)?;
            }
            top += HEADER_LINE_PX;
        }
        Ok(())
    })?;
    Ok(block("header", 0, height_px, vec![("id=\"header-text\"".to_owned(), svg)]))
}

/// A processor's state during a stage, as the timeline and the bands show it.
fn stage_shade(delay_ms: i64, failing: bool) -> RGBAColor {
    if failing {
        ALARM.mix(0.75)
    } else {
        // Darker as the delay grows, saturating at the rules' 5 s.
        PALETTE[0].mix(0.12 + 0.6 * (delay_ms as f64 / 5000.0).clamp(0.0, 1.0))
    }
}

/// The stages as intervals `[from, to)` within `[0, x_max_s]`, each with the state it sets;
/// before the first stage, the processors' initial state (no delay, not failing). A stage that
/// changes nothing extends the interval before it.
fn stage_spans(stages: &[Stage], x_max_s: f64) -> Vec<(f64, f64, Stage)> {
    let idle = ProcessorState { delay_ms: 0, failing: false };
    let mut starts = vec![Stage { at_s: 0.0, default: idle, fallback: idle }];
    for stage in stages {
        if starts
            .last()
            .is_none_or(|last| (last.default, last.fallback) != (stage.default, stage.fallback))
        {
            starts.push(*stage);
        }
    }
    (0..starts.len())
        .map(|i| {
            let to = starts.get(i + 1).map_or(x_max_s, |next| next.at_s);
            (starts[i].at_s.min(x_max_s), to.min(x_max_s), starts[i])
        })
        .filter(|(from, to, _)| to > from)
        .collect()
}

/// The timeline's rows, top to bottom: each distinct set of stages (the first run that has it)
/// as a row per processor, then each run's checks.
struct TimelineRows<'a> {
    stage_sets: Vec<(usize, &'a [Stage])>,
    checks: Vec<(usize, &'a Series)>,
}

impl<'a> TimelineRows<'a> {
    fn new(runs: &[Option<&'a Series>]) -> TimelineRows<'a> {
        let mut stage_sets: Vec<(usize, &[Stage])> = Vec::new();
        let mut checks = Vec::new();
        for (run, series) in runs.iter().enumerate() {
            let Some(series) = series else { continue };
            if !stage_sets.iter().any(|(_, stages)| *stages == series.stages.as_slice()) {
                stage_sets.push((run, &series.stages));
            }
            checks.push((run, *series));
        }
        TimelineRows { stage_sets, checks }
    }

    fn count(&self) -> usize {
        2 * self.stage_sets.len() + self.checks.len()
    }

    /// Each row's name and the run whose colour it takes; runs are numbered from 1 as in the
    /// header when there are several.
    fn names(&self, several: bool) -> Vec<(String, usize)> {
        let mut names = Vec::new();
        let numbered = |name: &str, run: usize, number: bool| match number {
            true => format!("{name} ({})", run + 1),
            false => name.to_owned(),
        };
        for (run, _) in &self.stage_sets {
            let number = several && self.stage_sets.len() > 1;
            names.push((numbered("default", *run, number), *run));
            names.push((numbered("fallback", *run, number), *run));
        }
        for (run, _) in &self.checks {
            names.push((numbered("checks", *run, several), *run));
        }
        names
    }
}

/// The timeline: each distinct set of stages as a row per processor (its delay, red while it
/// fails), then each run's checks as marks, red where a check found a difference.
pub fn timeline(runs: &[Option<&Series>], x_max_s: f64, top_px: u32) -> Result<Block, String> {
    let rows = TimelineRows::new(runs);
    let count = rows.count().max(1);
    let frame = Frame {
        height_px: TITLE_PX + X_LABELS_PX + ROW_PX * count as u32,
        x_max_s,
        y: -0.5..count as f64 - 0.5,
    };
    // Row 0 is drawn at the top.
    let row_y = |row: usize| (count - 1 - row) as f64;
    let names = rows.names(runs.len() > 1);
    let mut layers =
        vec![("class=\"axes\"".to_owned(), timeline_axes(&frame, &names, runs.len() > 1)?)];
    for (index, (_, stages)) in rows.stage_sets.iter().enumerate() {
        let spans = stage_spans(stages, x_max_s);
        let svg = chart_layer(&frame, |_, chart| {
            let (default_y, fallback_y) = (row_y(2 * index), row_y(2 * index + 1));
            draw_stage_row(chart, &spans, default_y, |s| (s.default.delay_ms, s.default.failing))?;
            draw_stage_row(chart, &spans, fallback_y, |s| (s.fallback.delay_ms, s.fallback.failing))
        })?;
        let attributes =
            format!("id=\"stages-{index}\" class=\"stages\" data-points=\"{}\"", 2 * spans.len());
        layers.push((attributes, svg));
    }
    for (index, (run, series)) in rows.checks.iter().enumerate() {
        let y = row_y(2 * rows.stage_sets.len() + index);
        layers.extend(check_layers(&frame, series, *run, y)?);
    }
    Ok(block("panel-timeline", top_px, frame.height_px, layers))
}

/// The timeline's grid, time axis, title and row names (in their run's colour when several).
fn timeline_axes(
    frame: &Frame,
    names: &[(String, usize)],
    several: bool,
) -> Result<String, String> {
    let title =
        "stages (each processor's delay; red: failing) and consistency checks (red: a difference)";
    chart_layer(frame, |root, chart| {
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("test time, s")
            .x_label_formatter(&|value| format!("{value:.0}"))
            .light_line_style(RGBColor(240, 240, 240))
            .label_style((FONT, 12))
            .draw()
            .map_err(drawing)?;
        draw_title(root, title)?;
        for (row, (name, run)) in names.iter().enumerate() {
            let colour = if several { PALETTE[*run % PALETTE.len()] } else { RGBColor(0, 0, 0) };
            let y = TITLE_PX + ROW_PX * row as u32 + ROW_PX / 2;
            let at = ((Y_LABELS_PX - 6) as i32, y as i32);
            let anchor = Pos::new(HPos::Right, VPos::Center);
            let style = (FONT, 12).into_font().color(&colour).pos(anchor);
            root.draw(&Text::new(name.clone(), at, style)).map_err(drawing)?;
        }
        Ok(())
    })
}

/// One processor's row of stage segments at `y`, each labelled with its delay.
fn draw_stage_row(
    chart: &mut Chart<'_, '_>,
    spans: &[(f64, f64, Stage)],
    y: f64,
    state: impl Fn(&Stage) -> (i64, bool),
) -> Result<(), String> {
    let plot_px = f64::from(WIDTH_PX - Y_LABELS_PX - RIGHT_PX);
    let x_max_s = chart.x_range().end;
    for (from, to, stage) in spans {
        let (delay_ms, failing) = state(stage);
        let corners = [(*from, y - 0.35), (*to, y + 0.35)];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                corners,
                stage_shade(delay_ms, failing).filled(),
            )))
            .map_err(drawing)?;
        let label =
            if failing { format!("{delay_ms} ms, failing") } else { format!("{delay_ms} ms") };
        // A label wider than its segment would run into the next one.
        let segment_px = (to - from) / x_max_s * plot_px;
        if segment_px > (label.len() as u32 * CHAR_PX + 8) as f64 {
            let style =
                (FONT, 11).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
            chart
                .draw_series(std::iter::once(Text::new(label, (*from + x_max_s / 400.0, y), style)))
                .map_err(drawing)?;
        }
    }
    Ok(())
}

/// A run's checks on row `y`: the clean ones and those that found a difference, as two layers
/// (`checks-clean-{run}`, `checks-inconsistent-{run}`), the latter with their counts.
fn check_layers(
    frame: &Frame,
    series: &Series,
    run: usize,
    y: f64,
) -> Result<Vec<(String, String)>, String> {
    let mut layers = Vec::new();
    for (kind, colour, found) in [("clean", CLEAN, false), ("inconsistent", ALARM, true)] {
        let marks: Vec<_> =
            series.checks.iter().filter(|c| (c.inconsistencies > 0) == found).collect();
        let svg = chart_layer(frame, |_, chart| {
            for mark in &marks {
                let at = (mark.at_s, y);
                chart
                    .draw_series(std::iter::once(Circle::new(at, 5, colour.filled())))
                    .map_err(drawing)?;
                if found {
                    let style = (FONT, 11)
                        .into_font()
                        .color(&ALARM)
                        .pos(Pos::new(HPos::Left, VPos::Bottom));
                    let label = Text::new(mark.inconsistencies.to_string(), at, style);
                    chart.draw_series(std::iter::once(label)).map_err(drawing)?;
                }
            }
            Ok(())
        })?;
        let attributes = format!(
            "id=\"checks-{kind}-{run}\" class=\"checks {kind}\" data-points=\"{}\"",
            marks.len()
        );
        layers.push((attributes, svg));
    }
    Ok(layers)
}

/// A panel's title, top left.
fn draw_title(root: &Root<'_>, title: &str) -> Result<(), String> {
    let style = (FONT, 14).into_font().style(FontStyle::Bold).color(&BLACK);
    root.draw(&Text::new(title.to_owned(), (Y_LABELS_PX as i32, 6), style)).map_err(drawing)
}

/// What every panel shows behind its lines: the stages' shading (of the first run with a
/// series) and a red line at each check that found a difference (of every run).
#[derive(Debug, Clone, Default)]
pub struct Backdrop {
    /// `[from, to)` and the stage in force.
    spans: Vec<(f64, f64, Stage)>,
    /// When each check that found a difference ran, s.
    red_checks_s: Vec<f64>,
}

impl Backdrop {
    /// The backdrop of `runs` over `[0, x_max_s]`.
    pub fn new(runs: &[Option<&Series>], x_max_s: f64) -> Backdrop {
        let spans = runs
            .iter()
            .flatten()
            .next()
            .map(|series| stage_spans(&series.stages, x_max_s))
            .unwrap_or_default();
        let red_checks_s = runs
            .iter()
            .flatten()
            .flat_map(|series| &series.checks)
            .filter(|check| check.inconsistencies > 0)
            .map(|check| check.at_s)
            .collect();
        Backdrop { spans, red_checks_s }
    }
}

/// A panel of lines: backdrop, axes with title and legend, then each line as a layer of its
/// own (`series-{panel}-{key}-{run}`).
pub fn panel(
    panel: &Panel,
    runs: usize,
    backdrop: &Backdrop,
    x_max_s: f64,
    top_px: u32,
) -> Result<Block, String> {
    let frame = Frame { height_px: PANEL_PX, x_max_s, y: y_range(&panel.lines, panel.log_y) };
    let mut layers = vec![
        ("class=\"bands\"".to_owned(), backdrop_layer(&frame, backdrop)?),
        ("class=\"axes\"".to_owned(), axes_layer(&frame, panel, runs)?),
    ];
    for line in &panel.lines {
        let style = line_style(line.key_index, line.run, runs);
        let svg = chart_layer(&frame, |_, chart| draw_line(chart, line, panel.log_y, style))?;
        let attributes = format!(
            "id=\"series-{id}-{key}-{run}\" class=\"series\" data-panel=\"{id}\" \
             data-key=\"{key}\" data-run=\"{run}\" data-points=\"{points}\"",
            id = panel.id,
            key = line.key,
            run = line.run,
            points = line.points()
        );
        layers.push((attributes, svg));
    }
    Ok(block(&format!("panel-{}", panel.id), top_px, PANEL_PX, layers))
}

/// Strokes that tell a panel's keys apart when colour tells the runs apart: (opacity, width).
const STROKES: [(f64, u32); 6] = [(1.0, 2), (0.5, 2), (1.0, 1), (0.25, 3), (0.5, 1), (0.25, 1)];

/// How line `key_index` of run `run` is drawn: in a single run, a colour per key; with several
/// runs, the run's colour and a stroke per key.
fn line_style(key_index: usize, run: usize, runs: usize) -> ShapeStyle {
    if runs == 1 {
        PALETTE[key_index % PALETTE.len()].stroke_width(2)
    } else {
        let (opacity, width) = STROKES[key_index % STROKES.len()];
        PALETTE[run % PALETTE.len()].mix(opacity).stroke_width(width)
    }
}

/// Where a value is drawn on the y axis: on a log scale, its decimal logarithm.
fn y_of(value: f64, log_y: bool) -> f64 {
    if log_y { value.max(LATENCY_FLOOR_MS).log10() } else { value }
}

/// The y range that holds every value of `lines`, from 0 (or below, for a negative lag) on a
/// linear axis, with a little room above.
fn y_range(lines: &[Line], log_y: bool) -> Range<f64> {
    let values =
        lines.iter().flat_map(|line| line.values.iter().flatten()).map(|&v| y_of(v, log_y));
    if log_y {
        let (low, high) = values
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| (low.min(v), high.max(v)));
        if !low.is_finite() {
            return -1.0..1.0;
        }
        let high = high.max(low + 1.0);
        low - 0.1..high + 0.1
    } else {
        let (low, high) =
            values.fold((0.0_f64, 0.0_f64), |(low, high), v| (low.min(v), high.max(v)));
        // All zeros (no failed POST, an idle instance) still get an axis to sit on.
        let high = if high > low { high } else { low + 1.0 };
        let room = (high - low) * 0.06;
        (if low < 0.0 { low - room } else { 0.0 })..high + room
    }
}

/// A y label with as many decimals as tell its neighbours apart: on a linear axis, enough for a
/// tenth of the span (about one label step); on a log scale, the value the log stands for, to
/// two significant digits.
fn y_label(value: f64, span: f64, log_y: bool) -> String {
    let (shown, step) = if log_y {
        let shown = 10_f64.powf(value);
        (shown, shown / 10.0)
    } else {
        (value, span / 10.0)
    };
    // The nudge keeps a step of 0.1 computed as 0.0999... at one decimal.
    let decimals =
        if step > 0.0 { (-step.log10() - 1e-6).ceil().clamp(0.0, 6.0) as usize } else { 0 };
    format!("{shown:.decimals$}")
}

/// The backdrop of a panel: shaded stages (red while a processor fails, amber while one is
/// slow) and a red line at each check that found a difference.
fn backdrop_layer(frame: &Frame, backdrop: &Backdrop) -> Result<String, String> {
    let amber = RGBColor(255, 187, 0);
    chart_layer(frame, |_, chart| {
        for (from, to, stage) in &backdrop.spans {
            let failing = stage.default.failing || stage.fallback.failing;
            let slow = stage.default.delay_ms.max(stage.fallback.delay_ms) >= SLOW_DELAY_MS;
            let shade = match (failing, slow) {
                (true, _) => ALARM.mix(0.10),
                (false, true) => amber.mix(0.12),
                (false, false) => continue,
            };
            let corners = [(*from, frame.y.start), (*to, frame.y.end)];
            chart
                .draw_series(std::iter::once(Rectangle::new(corners, shade.filled())))
                .map_err(drawing)?;
        }
        for at_s in &backdrop.red_checks_s {
            let path = vec![(*at_s, frame.y.start), (*at_s, frame.y.end)];
            chart
                .draw_series(std::iter::once(PathElement::new(path, ALARM.mix(0.6))))
                .map_err(drawing)?;
        }
        Ok(())
    })
}

/// A panel's grid, axes, title and legend.
fn axes_layer(frame: &Frame, panel: &Panel, runs: usize) -> Result<String, String> {
    let span = frame.y.end - frame.y.start;
    let log_y = panel.log_y;
    let label = move |value: &f64| y_label(*value, span, log_y);
    chart_layer(frame, |root, chart| {
        chart
            .configure_mesh()
            .x_desc("test time, s")
            .y_desc(panel.y_desc)
            .y_label_formatter(&label)
            .x_label_formatter(&|value| format!("{value:.0}"))
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(215, 215, 215))
            .label_style((FONT, 12))
            .draw()
            .map_err(drawing)?;
        draw_title(root, panel.title)?;
        draw_legend(root, panel, runs)
    })
}

/// The panel's keys, top right, each with its stroke (its colour too in a single run).
fn draw_legend(root: &Root<'_>, panel: &Panel, runs: usize) -> Result<(), String> {
    let mut keys: Vec<(usize, &str)> = Vec::new();
    for line in &panel.lines {
        if !keys.iter().any(|(index, _)| *index == line.key_index) {
            keys.push((line.key_index, &line.key));
        }
    }
    let width = |key: &str| 36 + key.len() as u32 * CHAR_PX;
    let total: u32 = keys.iter().map(|(_, key)| width(key)).sum();
    let mut x = WIDTH_PX.saturating_sub(RIGHT_PX + total) as i32;
    let y = (TITLE_PX / 2) as i32;
    for (index, key) in keys {
        let style = match runs {
            1 => line_style(index, 0, 1),
            _ => {
                let (opacity, stroke) = STROKES[index % STROKES.len()];
                BLACK.mix(opacity).stroke_width(stroke)
            }
        };
        root.draw(&PathElement::new(vec![(x, y), (x + 22, y)], style)).map_err(drawing)?;
        let text = (FONT, 12).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(key.to_owned(), (x + 26, y), text)).map_err(drawing)?;
        x += width(key) as i32;
    }
    Ok(())
}

/// A line's values as points, split where a value is missing; a point alone is drawn as a dot,
/// since a one-point line shows nothing.
fn draw_line(
    chart: &mut Chart<'_, '_>,
    line: &Line,
    log_y: bool,
    style: ShapeStyle,
) -> Result<(), String> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut piece = Vec::new();
    for (second, value) in line.values.iter().enumerate() {
        match value {
            // The entry covers the second ending at `second + 1`.
            Some(value) => piece.push(((second + 1) as f64, y_of(*value, log_y))),
            None => pieces.push(std::mem::take(&mut piece)),
        }
    }
    pieces.push(piece);
    for piece in pieces.into_iter().filter(|piece| !piece.is_empty()) {
        if let [point] = piece[..] {
            chart
                .draw_series(std::iter::once(Circle::new(point, 2, style.filled())))
                .map_err(drawing)?;
        } else {
            chart.draw_series(LineSeries::new(piece, style)).map_err(drawing)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::report::read_results;

    /// Goal: the score line shows the late landings, with the latest one's lateness, or `-`
    /// where they were not counted, and is cut between figures into lines that fit the
    /// picture's width even with a final's long figures. Method: the `ci-short` fixture with
    /// a final's figures written in, then without late landings.
    #[test]
    fn score_lines_show_late_landings_and_fit_the_width() {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci-short-payrelay.json");
        let mut results = read_results(&fixture).expect("fixture");
        results.score = 2_039_812.34;
        results.default_count = 52_945;
        results.fallback_count = 37_646;
        results.lag = -12;
        results.posts_failed = 1_234;
        results.late_landings = Some(34);
        results.late_landing_max_ms = Some(4002);
        let lines = score_lines(&results);
        assert!(lines.len() > 1, "a final's figures take two lines: {lines:?}");
        let width_px = |line: &String| line.chars().count() as u32 * HEADER_CHAR_PX;
        assert!(
            lines.iter().all(|line| width_px(line) <= WIDTH_PX - 2 * HEADER_LEFT_PX),
            "{lines:?}"
        );
        assert_eq!(lines.join(SCORE_SEPARATOR), score_figures(&results).join(SCORE_SEPARATOR));
        assert!(lines.iter().all(|line| !line.starts_with(' ') && !line.ends_with(' ')));
        assert!(lines[lines.len() - 1].ends_with("late landings 34 (latest 4002 ms)"), "{lines:?}");

        results.late_landings = None;
        results.late_landing_max_ms = None;
        let figures = score_figures(&results);
        assert_eq!(figures[figures.len() - 1], "late landings -");
        results.late_landings = Some(0);
        results.late_landing_max_ms = Some(0);
        let figures = score_figures(&results);
        assert_eq!(figures[figures.len() - 1], "late landings 0");
    }
}
