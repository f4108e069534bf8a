//! SVG plots of a comparison (`snaplab compare`): write latency over time per strategy,
//! the extra memory each save took over time, and a summary of save duration and peak
//! memory per strategy.
//!
//! Only plotters' SVG backend is built, without font crates: text is written as SVG
//! `<text>` and the viewer picks the font, so plotters places text from a rough width
//! estimate. Layouts therefore leave generous room around labels instead of relying on
//! measured extents.
//!
//! A strategy keeps one colour in all three plots: its position among the rows (traces
//! without a row follow), through a fixed palette.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::compare::{CompareRow, Trace};

/// Generic family: the SVG viewer resolves it.
const FONT: &str = "sans-serif";
/// Tableau 10 with its grey moved last, so the first strategies never look like the
/// black/grey markers.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
];
/// Shading of the save window (BGSAVE called until the file is in place).
const SAVE_FILL: RGBColor = RGBColor(255, 214, 102);
const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 180;
const MIB: f64 = 1024.0 * 1024.0;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Write the comparison's plots into `dir` (created if absent); returns the files written.
///
/// - `latency.svg`: write latency (µs, log scale) against time since the BGSAVE call (ms),
///   one panel per strategy on shared axes: the largest latency per window as a line, the
///   median per window as a thinner, lighter one, the save window shaded, and markers at
///   the BGSAVE call, the cut and the end of the save.
/// - `memory.svg`: extra resident memory (MiB) against time since the BGSAVE call (ms),
///   one line per strategy (the trace's samples) with a dot where its save ended. The
///   samples include a forked child's copy-on-write pages (read every 20 ms), so the line's
///   top is the summary's peak unless the child lived between two reads.
/// - `summary.svg`, "latency bought for memory paid", four bar charts per strategy: save
///   duration (ms); write p99 during the save (ms) with its baseline as the bar's light
///   part and in the label; peak extra memory (MiB, with its share of the row's own
///   dataset); resident memory, steady state (the loaded store, light) to the save's peak.
///
/// Missing figures (`None`, non-finite values, empty series, a row without a trace) are
/// left out or marked "n/a"; they never fail the call.
///
/// # Errors
/// Creating `dir`, drawing, or writing a file failed.
pub fn write_plots(dir: &Path, rows: &[CompareRow], traces: &[Trace]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = strategy_names(rows, traces);
    let plots = [
        ("latency.svg", latency_svg(&names, rows, traces).context("drawing the latency plot")?),
        ("memory.svg", memory_svg(&names, rows, traces).context("drawing the memory plot")?),
        ("summary.svg", summary_svg(&names, rows).context("drawing the summary plot")?),
    ];
    let mut written = Vec::with_capacity(plots.len());
    for (file, svg) in plots {
        let path = dir.join(file);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Every strategy once, rows first in their order, then traces that have no row; a
/// strategy's index here picks its colour.
fn strategy_names(rows: &[CompareRow], traces: &[Trace]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in rows.iter().map(|r| &r.strategy).chain(traces.iter().map(|t| &t.strategy)) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn trace_of<'a>(traces: &'a [Trace], name: &str) -> Option<&'a Trace> {
    traces.iter().find(|t| t.strategy == name)
}

/// Draw onto an SVG document of `size` pixels and return its text.
fn render(size: (u32, u32), draw: impl FnOnce(&Area) -> Result<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    // ImageMagick's built-in SVG renderer reads `opacity` after `fill="none"` as turning
    // the fill back on, which paints every line series as a solid black polygon; the
    // attribute says nothing here since all colours are opaque.
    Ok(svg.replace(r#"fill="none" opacity="1""#, r#"fill="none""#))
}

/// `c` laid at `alpha` over white, as an opaque colour. Every colour here is opaque:
/// ImageMagick's built-in SVG renderer ignores opacity, and opaque colours render alike
/// everywhere.
fn tint(c: RGBColor, alpha: f64) -> RGBColor {
    let mix = |v: u8| (f64::from(v) * alpha + 255.0 * (1.0 - alpha)).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// Draw `title` centred along the top of `area` and return the rest of it. Anchored at
/// the baseline rather than plotters' caption (top anchor, `dy="0.76em"`), which a
/// renderer ignoring `dy` (ImageMagick's built-in one) draws a line too high, over the
/// plot.
fn titled<'a>(area: &Area<'a>, title: &str, size: u32) -> Result<Area<'a>> {
    let height = size + 10;
    let (top, rest) = area.split_vertically(height);
    let (width, _) = top.dim_in_pixel();
    top.draw(&Text::new(
        title.to_string(),
        (width as i32 / 2, height as i32 - 3),
        bold_style(size).pos(Pos::new(HPos::Center, VPos::Bottom)),
    ))?;
    Ok(rest)
}

fn text_style(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

fn bold_style(size: u32) -> TextStyle<'static> {
    (FONT, size, FontStyle::Bold).into_font().color(&BLACK)
}

/// Rough rendered width of `text` in pixels at plotters font size `size` (which SVG
/// renders at `size / 1.24` px): about 0.6 em per character in a sans-serif face.
fn text_width(text: &str, size: u32) -> u32 {
    (text.chars().count() as f64 * f64::from(size) / 1.24 * 0.6).ceil() as u32
}

/// Milliseconds with precision that suits their size.
fn fmt_ms(ms: f64) -> String {
    match ms.abs() {
        a if a < 10.0 => format!("{ms:.2} ms"),
        a if a < 100.0 => format!("{ms:.1} ms"),
        _ => format!("{ms:.0} ms"),
    }
}

/// A latency in µs, switching to ms for large values so captions stay short.
fn fmt_us(us: f64) -> String {
    if us.abs() >= 1000.0 { fmt_ms(us / 1000.0) } else { format!("{us:.0} µs") }
}

/// Axis tick value: integers when large (grouped by thousands with a space), a few
/// decimals when small.
fn fmt_tick(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    if v.abs() >= 10_000.0 {
        let digits = format!("{:.0}", v.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(' ');
            }
            grouped.push(c);
        }
        if v < 0.0 { format!("-{grouped}") } else { grouped }
    } else if v.abs() >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Finite points sorted by time, values mapped through `y` (for units and clamping).
fn clean_points<T: Copy>(series: &[(f64, T)], y: impl Fn(T) -> f64) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> =
        series.iter().map(|&(x, v)| (x, y(v))).filter(|(x, v)| x.is_finite() && v.is_finite()).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// `lo..hi` widened by a small margin on each side, and never empty.
fn padded(lo: f64, hi: f64) -> Range<f64> {
    let (lo, hi) = if hi - lo < 1.0 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let pad = (hi - lo) * 0.02;
    lo - pad..hi + pad
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

// ---------------------------------------------------------------------------------------
// latency.svg

const LATENCY_HEADER: u32 = 64;
const LATENCY_FOOTER: u32 = 36;
const LATENCY_Y_STRIP: u32 = 28;
const LATENCY_Y_LABELS: u32 = 62;
const LATENCY_MARGIN_LEFT: u32 = 4;
const LATENCY_MARGIN_RIGHT: u32 = 24;

/// One x range for every panel: the baseline's first window through the latest save end.
fn latency_x_range(traces: &[Trace]) -> Range<f64> {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for t in traces {
        let window = finite(t.window_ms).filter(|w| *w > 0.0).unwrap_or(0.0);
        for &(x, _) in t.latency_max_us.iter().chain(&t.latency_p50_us) {
            if x.is_finite() {
                lo = lo.min(x);
                hi = hi.max(x + window);
            }
        }
        for x in [t.cut_ms, t.end_ms].into_iter().filter_map(finite) {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    padded(lo, hi)
}

/// One log range for every panel, whole decades wide, at least two of them.
fn latency_y_range(traces: &[Trace]) -> Range<f64> {
    let values = traces.iter().flat_map(|t| t.latency_max_us.iter().chain(&t.latency_p50_us)).map(|p| p.1);
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 1.0..10_000.0;
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 100.0);
    lo..hi
}

/// The panel's title: the cut and the end of the save, then the worst write during the
/// save (the table's `max ms`: writes due between the BGSAVE call and the end of the
/// save), and, when a write outside the save was worse, that one too, labelled as such.
fn latency_caption(name: &str, row: Option<&CompareRow>, trace: Option<&Trace>) -> String {
    let Some(t) = trace else { return format!("{name} (no trace)") };
    let mut parts = vec![name.to_string()];
    if row.is_some_and(|r| r.overloaded) {
        parts[0].push_str(" (OVERLOADED)");
    }
    if let Some(cut) = finite(t.cut_ms) {
        parts.push(format!("cut {}", fmt_ms(cut)));
    }
    if let Some(end) = finite(t.end_ms) {
        parts.push(format!("save ended {}", fmt_ms(end)));
    }
    let max = t
        .latency_max_us
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let in_save = row.and_then(|r| r.latency_max_us).filter(|v| v.is_finite());
    if let Some(m) = in_save {
        parts.push(format!("max during save {}", fmt_us(m)));
    }
    match (max, in_save) {
        (Some(all), Some(m)) if all > m => parts.push(format!("worst in view {}", fmt_us(all))),
        (Some(all), None) => parts.push(format!("worst in view {}", fmt_us(all))),
        _ => {}
    }
    parts.join("   ·   ")
}

fn latency_svg(names: &[String], rows: &[CompareRow], traces: &[Trace]) -> Result<String> {
    let panels = names.len().max(1) as u32;
    let height = LATENCY_HEADER + panels * PANEL_HEIGHT + LATENCY_FOOTER;
    render((WIDTH, height), |root| {
        let (header, rest) = root.split_vertically(LATENCY_HEADER);
        let (body, footer) = rest.split_vertically(panels * PANEL_HEIGHT);
        let (y_strip, panel_area) = body.split_horizontally(LATENCY_Y_STRIP);
        let window = traces.iter().find_map(|t| finite(t.window_ms).filter(|w| *w > 0.0));
        latency_header(&header, window, &transport_note(rows))?;

        // Axis titles are drawn once for the whole figure rather than per panel.
        let (_, strip_h) = y_strip.dim_in_pixel();
        y_strip.draw(&Text::new(
            "write latency (µs), log scale",
            (LATENCY_Y_STRIP as i32 / 2, strip_h as i32 / 2),
            text_style(17).transform(FontTransform::Rotate270).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        let plot_left = (LATENCY_Y_STRIP + LATENCY_MARGIN_LEFT + LATENCY_Y_LABELS) as i32;
        let plot_centre = (plot_left + WIDTH as i32 - LATENCY_MARGIN_RIGHT as i32) / 2;
        footer.draw(&Text::new(
            "time since BGSAVE (ms)",
            (plot_centre, 26),
            text_style(17).pos(Pos::new(HPos::Center, VPos::Bottom)),
        ))?;

        if names.is_empty() {
            panel_area.draw(&Text::new("no strategies to plot", (300, 60), text_style(18)))?;
            return Ok(());
        }
        let x = latency_x_range(traces);
        let y = latency_y_range(traces);
        for (i, (name, area)) in names.iter().zip(panel_area.split_evenly((names.len(), 1))).enumerate() {
            let row = rows.iter().find(|r| &r.strategy == name);
            latency_panel(&area, name, row, trace_of(traces, name), colour(i), x.clone(), y.clone())?;
        }
        Ok(())
    })
}

/// What a title adds to say how the strategies' rows were driven (`compare --transport`):
/// ` (transport resp)`, or nothing for rows that do not say.
fn transport_note(rows: &[CompareRow]) -> String {
    let strategy_row = rows.iter().find(|r| !r.strategy.starts_with("redis-")).or(rows.first());
    strategy_row.and_then(|r| r.transport).map_or_else(String::new, |t| format!(" (transport {t})"))
}

/// Title and the legend, drawn by hand once for all panels (a plotters legend per panel
/// would repeat itself and cover data).
fn latency_header(area: &Area, window_ms: Option<f64>, note: &str) -> Result<()> {
    area.draw(&Text::new(
        format!("Write latency around BGSAVE, per strategy{note}"),
        (LATENCY_Y_STRIP as i32 + 10, 26),
        bold_style(21).pos(Pos::new(HPos::Left, VPos::Bottom)),
    ))?;
    let window = window_ms.map_or_else(|| "window".to_string(), |w| format!("{} ms window", fmt_tick(w)));
    let dark = RGBColor(70, 70, 70);
    let entries: [(String, LegendMark); 6] = [
        (format!("max per {window}"), LegendMark::Line(dark.stroke_width(2))),
        ("median (p50) per window".into(), LegendMark::Line(tint(dark, 0.45).stroke_width(1))),
        ("save window".into(), LegendMark::Fill(tint(SAVE_FILL, 0.35).filled())),
        ("BGSAVE called".into(), LegendMark::Vertical(None)),
        ("cut taken".into(), LegendMark::Vertical(Some(CUT_DASH))),
        ("save ended".into(), LegendMark::Vertical(Some(END_DASH))),
    ];
    let mut x = LATENCY_Y_STRIP as i32 + 10;
    for (label, mark) in entries {
        x = legend_entry(area, (x, 48), &label, &mark, 15)? + 18;
    }
    Ok(())
}

/// Dash and gap lengths (px) of the cut and save-end marker lines.
const CUT_DASH: (u32, u32) = (7, 4);
const END_DASH: (u32, u32) = (2, 3);

enum LegendMark {
    Line(ShapeStyle),
    /// A vertical marker line, dashed when given (dash, gap) lengths.
    Vertical(Option<(u32, u32)>),
    Fill(ShapeStyle),
    Dot(RGBColor),
}

/// One legend sample and its label with the sample's centre at `(x, y)`; returns the x
/// where the label ends.
fn legend_entry(area: &Area, (x, y): (i32, i32), label: &str, mark: &LegendMark, size: u32) -> Result<i32> {
    const SAMPLE: i32 = 26;
    match mark {
        LegendMark::Line(style) => area.draw(&PathElement::new(vec![(x, y), (x + SAMPLE, y)], *style))?,
        LegendMark::Vertical(dash) => {
            let points = vec![(x + SAMPLE / 2, y - 8), (x + SAMPLE / 2, y + 8)];
            match dash {
                Some((dash, gap)) => area.draw(&DashedPathElement::new(points, *dash, *gap, BLACK.stroke_width(1)))?,
                None => area.draw(&PathElement::new(points, BLACK.stroke_width(1)))?,
            }
        }
        LegendMark::Fill(style) => area.draw(&Rectangle::new([(x, y - 7), (x + SAMPLE, y + 7)], *style))?,
        LegendMark::Dot(c) => area.draw(&Circle::new((x + SAMPLE / 2, y), 5, c.filled()))?,
    }
    let text_x = x + SAMPLE + 6;
    area.draw(&Text::new(label.to_string(), (text_x, y), text_style(size).pos(Pos::new(HPos::Left, VPos::Center))))?;
    Ok(text_x + text_width(label, size) as i32)
}

fn latency_panel(
    area: &Area,
    name: &str,
    row: Option<&CompareRow>,
    trace: Option<&Trace>,
    colour: RGBColor,
    x: Range<f64>,
    y: Range<f64>,
) -> Result<()> {
    let area = titled(area, &latency_caption(name, row, trace), 16)?;
    let mut chart = ChartBuilder::on(&area)
        .margin_top(4)
        .margin_left(LATENCY_MARGIN_LEFT)
        .margin_right(LATENCY_MARGIN_RIGHT)
        .x_label_area_size(22)
        .y_label_area_size(LATENCY_Y_LABELS)
        .build_cartesian_2d(x.clone(), y.clone().log_scale())?;
    // Shading first, so the grid and the series stay visible on top of it.
    if let Some(end) = trace.and_then(|t| finite(t.end_ms)) {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(end.min(0.0), y.start), (end.max(0.0), y.end)],
            tint(SAVE_FILL, 0.35).filled(),
        )))?;
    }
    chart
        .configure_mesh()
        .x_labels(16)
        .y_labels(6)
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .label_style(text_style(13))
        .bold_line_style(tint(BLACK, 0.12))
        .light_line_style(tint(BLACK, 0.04))
        .draw()?;
    let vline = |at: f64| vec![(at, y.start), (at, y.end)];

    let Some(t) = trace else {
        return note(&mut chart, "no trace recorded", &x, &y);
    };
    chart.draw_series(std::iter::once(PathElement::new(vline(0.0), BLACK.stroke_width(1))))?;
    if let Some(cut) = finite(t.cut_ms) {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vline(cut),
            CUT_DASH.0,
            CUT_DASH.1,
            BLACK.stroke_width(1),
        )))?;
    }
    if let Some(end) = finite(t.end_ms) {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vline(end),
            END_DASH.0,
            END_DASH.1,
            BLACK.stroke_width(1),
        )))?;
    }

    // Log scale: a zero or negative latency would map to -inf, so it sits on the floor.
    let clamp = |v: f64| v.clamp(y.start, y.end);
    let p50 = clean_points(&t.latency_p50_us, clamp);
    let max = clean_points(&t.latency_max_us, clamp);
    chart.draw_series(LineSeries::new(p50.iter().copied(), tint(colour, 0.5).stroke_width(1)))?;
    chart.draw_series(LineSeries::new(max.iter().copied(), colour.stroke_width(2)))?;
    if p50.is_empty() && max.is_empty() {
        note(&mut chart, "no latency samples", &x, &y)?;
    }
    Ok(())
}

/// A grey message inside an otherwise empty log-scaled panel.
fn note(
    chart: &mut ChartContext<SVGBackend, Cartesian2d<RangedCoordf64, LogCoord<f64>>>,
    msg: &str,
    x: &Range<f64>,
    y: &Range<f64>,
) -> Result<()> {
    let at = ((x.start + x.end) / 2.0, (y.start * y.end).sqrt());
    chart.plotting_area().draw(&Text::new(
        msg.to_string(),
        at,
        text_style(16).color(&tint(BLACK, 0.5)).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// memory.svg

const MEMORY_HEIGHT: u32 = 520;
const MEMORY_LEGEND: u32 = 230;

fn memory_svg(names: &[String], rows: &[CompareRow], traces: &[Trace]) -> Result<String> {
    render((WIDTH, MEMORY_HEIGHT), |root| {
        let (plot_area, legend_area) = root.split_horizontally(WIDTH - MEMORY_LEGEND);
        let series: Vec<Vec<(f64, f64)>> = names
            .iter()
            .map(|n| trace_of(traces, n).map_or_else(Vec::new, |t| clean_points(&t.extra_memory_bytes, to_mib)))
            .collect();

        let (mut lo, mut hi, mut top) = (0.0f64, 0.0f64, 0.0f64);
        for (x, v) in series.iter().flatten() {
            lo = lo.min(*x);
            hi = hi.max(*x);
            top = top.max(*v);
        }
        for t in traces.iter().filter_map(|t| finite(t.end_ms)) {
            lo = lo.min(t);
            hi = hi.max(t);
        }
        let top = if top > 0.0 { top * 1.08 } else { 1.0 };

        let plot_area =
            titled(&plot_area, &format!("Extra resident memory during the save{}", transport_note(rows)), 21)?;
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(14)
            .margin_right(20)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(padded(lo, hi), 0.0..top)?;
        chart
            .configure_mesh()
            .x_labels(12)
            .y_labels(8)
            .x_label_formatter(&|v| fmt_tick(*v))
            .y_label_formatter(&|v| fmt_tick(*v))
            .x_desc("time since BGSAVE (ms)")
            .y_desc("extra resident memory (MiB)")
            .label_style(text_style(13))
            .axis_desc_style(text_style(17))
            .bold_line_style(tint(BLACK, 0.12))
            .light_line_style(tint(BLACK, 0.04))
            .draw()?;
        chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, 0.0), (0.0, top)], BLACK.stroke_width(1))))?;

        for (i, (name, points)) in names.iter().zip(&series).enumerate() {
            chart.draw_series(LineSeries::new(points.iter().copied(), colour(i).stroke_width(2)))?;
            let end = trace_of(traces, name).and_then(|t| finite(t.end_ms));
            if let (Some(end), Some(first)) = (end, points.first()) {
                // The value the line shows at end_ms: the last sample taken by then.
                let at_end = points.iter().take_while(|p| p.0 <= end).last().unwrap_or(first).1;
                chart.draw_series(std::iter::once(
                    EmptyElement::at((end, at_end))
                        + Circle::new((0, 0), 6, WHITE.filled())
                        + Circle::new((0, 0), 4, colour(i).filled()),
                ))?;
            }
        }

        legend_area.draw(&Text::new("strategy", (4, 40), bold_style(16)))?;
        let mut y = 72;
        let mut any_after = false;
        for (i, (name, points)) in names.iter().zip(&series).enumerate() {
            let mut label = if points.is_empty() { format!("{name} (no samples)") } else { name.clone() };
            if let Some((after, trimmed)) = rows.iter().find(|r| &r.strategy == name).and_then(after_save_mib) {
                label.push_str(&format!("  {after:.0}→{trimmed:.0}"));
                any_after = true;
            }
            legend_entry(&legend_area, (4, y), &label, &LegendMark::Line(colour(i).stroke_width(3)), 15)?;
            y += 24;
        }
        y += 12;
        legend_entry(&legend_area, (4, y), "save ended", &LegendMark::Dot(RGBColor(70, 70, 70)), 15)?;
        legend_entry(&legend_area, (4, y + 24), "BGSAVE called", &LegendMark::Vertical(None), 15)?;
        if any_after {
            // Why a line stays up after its save: the allocator's, not the store's.
            let after_ms = crate::compare::AFTER_SAVE.as_millis();
            let first = format!("a → b: MiB still added {after_ms} ms");
            let note = [
                first.as_str(),
                "after the save → after glibc's",
                "malloc_trim(0). The difference",
                "is memory the store freed and",
                "the allocator kept for reuse.",
            ];
            for (k, line) in note.iter().enumerate() {
                legend_area.draw(&Text::new(*line, (4, y + 64 + 19 * k as i32), text_style(13)))?;
            }
        }
        Ok(())
    })
}

/// A row's extra memory after its save, before and after `malloc_trim`, MiB.
fn after_save_mib(row: &CompareRow) -> Option<(f64, f64)> {
    let get = |name: &str| row.figures.get(name).copied().filter(|v| v.is_finite());
    Some((get(crate::compare::AFTER_SAVE_FIGURE)? / MIB, get(crate::compare::AFTER_TRIM_FIGURE)? / MIB))
}

fn to_mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

// ---------------------------------------------------------------------------------------
// summary.svg

struct Bar {
    name: String,
    colour: RGBColor,
    value: Option<f64>,
    /// A lighter first part of the bar, from 0 to this: the same figure without a save
    /// (baseline p99, steady-state memory), so the bar reads "without → with".
    under: Option<f64>,
    label: String,
}

/// A bar's value, its light part and its label.
type BarValue = (f64, Option<f64>, String);

fn summary_svg(names: &[String], rows: &[CompareRow]) -> Result<String> {
    let row_of = |name: &str| rows.iter().find(|r| r.strategy == name);
    let bars = |value: &dyn Fn(&CompareRow) -> Option<BarValue>| -> Vec<Bar> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let v = row_of(name).and_then(value);
                Bar {
                    name: name.clone(),
                    colour: colour(i),
                    value: v.as_ref().map(|v| v.0),
                    under: v.as_ref().and_then(|v| v.1),
                    label: v.map_or_else(|| "n/a".to_string(), |v| v.2),
                }
            })
            .collect()
    };
    let save = bars(&|r| finite(r.save_ms).map(|ms| (ms, None, fmt_ms(ms))));
    // Latency bought: p99 of the writes due during the save, its baseline as the light part.
    let p99 = bars(&|r| {
        let during = r.latency_p99_us.filter(|v| v.is_finite())?;
        let base = r.baseline_p99_us.filter(|v| v.is_finite());
        let mut label = match base {
            Some(b) if b > 0.0 => format!("{} (base {}, ×{:.1})", fmt_us(during), fmt_us(b), during / b),
            _ => fmt_us(during),
        };
        if r.overloaded {
            label.push_str(" OVERLOADED");
        }
        Some((during / 1000.0, base.map(|b| (b / 1000.0).min(during / 1000.0)), label))
    });
    // Memory paid: the store's steady-state size (light) plus what the save added on top.
    let total = bars(&|r| {
        let steady = to_mib(r.dataset_bytes?);
        let peak = steady + r.peak_extra_memory_bytes.map_or(0.0, to_mib);
        Some((peak, Some(steady), format!("{steady:.0} → {peak:.0} MiB")))
    });
    let memory = bars(&|r| {
        let bytes = r.peak_extra_memory_bytes?;
        let mib = to_mib(bytes);
        let share = r
            .dataset_bytes
            .filter(|d| *d > 0)
            .map(|d| format!(" ({:.0} % of its own data)", 100.0 * bytes as f64 / d as f64));
        Some((mib, None, format!("{mib:.1} MiB{}", share.unwrap_or_default())))
    });

    let half = 130 + names.len().max(1) as u32 * 42;
    render((WIDTH, 2 * half), |root| {
        let (top, bottom) = root.split_vertically(half);
        let (left, right) = top.split_horizontally(WIDTH / 2);
        bar_chart(
            &left,
            &format!("Save duration{}", transport_note(rows)),
            "BGSAVE call to file in place (ms)",
            &save,
        )?;
        bar_chart(&right, "Write p99: without → during the save", "p99 write latency (ms)", &p99)?;
        let (left, right) = bottom.split_horizontally(WIDTH / 2);
        bar_chart(&left, "Peak extra memory", "peak extra memory (MiB)", &memory)?;
        bar_chart(&right, "Memory: steady state → at the save's peak", "resident memory (MiB)", &total)?;
        Ok(())
    })
}

/// Horizontal bars (strategy names on the y axis, where long names fit), first row on top,
/// each bar labelled with its value; a missing value shows "n/a" instead of a bar.
fn bar_chart(area: &Area, title: &str, x_desc: &str, bars: &[Bar]) -> Result<()> {
    let n = bars.len().max(1) as i32;
    let max = bars.iter().filter_map(|b| b.value).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    // Room to the right of the longest bar for its label.
    let longest_label = bars.iter().map(|b| b.label.chars().count()).max().unwrap_or(0) as f64;
    let x_end = if max > 0.0 { max * (1.15 + longest_label * 0.032) } else { 1.0 };
    let name_width = bars.iter().map(|b| text_width(&b.name, 14)).max().unwrap_or(40) + 16;
    let area = titled(area, title, 20)?;
    let mut chart = ChartBuilder::on(&area)
        .margin(14)
        .margin_right(24)
        .x_label_area_size(50)
        .y_label_area_size(name_width)
        .build_cartesian_2d(0.0..x_end, (0..n - 1).into_segmented())?;
    // Position p (0 = bottom) holds bar n-1-p, so the first row reads at the top.
    let name_at = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(p) => bars.get((n - 1 - p) as usize).map(|b| b.name.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n as usize)
        .x_labels(6)
        .y_label_formatter(&name_at)
        .x_label_formatter(&|v| fmt_tick(*v))
        .x_desc(x_desc)
        .label_style(text_style(14))
        .axis_desc_style(text_style(16))
        .bold_line_style(tint(BLACK, 0.12))
        // No minor grid between bars; `max_light_lines(0)` would overflow in plotters' i32 axis.
        .light_line_style(WHITE)
        .draw()?;
    for (i, bar) in bars.iter().enumerate() {
        let p = n - 1 - i as i32;
        let value = bar.value.filter(|v| v.is_finite() && *v >= 0.0);
        if let Some(v) = value {
            let mut rect =
                Rectangle::new([(0.0, SegmentValue::Exact(p)), (v, SegmentValue::Exact(p + 1))], bar.colour.filled());
            rect.set_margin(7, 7, 0, 0);
            chart.draw_series(std::iter::once(rect))?;
            if let Some(u) = bar.under.filter(|u| u.is_finite() && *u > 0.0) {
                let mut light = Rectangle::new(
                    [(0.0, SegmentValue::Exact(p)), (u.min(v), SegmentValue::Exact(p + 1))],
                    tint(bar.colour, 0.35).filled(),
                );
                light.set_margin(7, 7, 0, 0);
                chart.draw_series(std::iter::once(light))?;
            }
        }
        let label_style = text_style(14).pos(Pos::new(HPos::Left, VPos::Center));
        chart.draw_series(std::iter::once(
            EmptyElement::at((value.unwrap_or(0.0), SegmentValue::CenterOf(p)))
                + Text::new(bar.label.clone(), (5, 0), label_style),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row from JSON, so the test keeps compiling as `CompareRow` gains optional fields.
    fn row(strategy: &str, save_ms: f64, peak: Option<u64>, dataset: Option<u64>) -> CompareRow {
        let mut row: CompareRow = serde_json::from_value(serde_json::json!({
            "strategy": strategy,
            "load_ms": 10.0,
            "time_to_cut_ms": 0.5,
            "save_ms": 0.0,
            "max_stall_ms": 1.0,
            "writes_during_save": 100,
            "file_bytes": 1000,
            "verified": true,
            "peak_extra_memory_bytes": peak,
            "dataset_bytes": dataset,
        }))
        .expect("a valid CompareRow");
        // Set afterwards: JSON has no NaN, and the plots must cope with one.
        row.save_ms = save_ms;
        row
    }

    /// A trace with a baseline from -200 ms, a save ending at `end_ms`, latencies around
    /// 50 µs and, when `spike_at` is given, a 40 ms stall in that window.
    fn trace(strategy: &str, end_ms: f64, spike_at: Option<f64>) -> Trace {
        let windows: Vec<f64> = (-20..((end_ms / 10.0) as i32 + 5)).map(|w| f64::from(w) * 10.0).collect();
        let max = windows
            .iter()
            .map(|&x| (x, if Some(x) == spike_at { 40_000.0 } else { 80.0 + (x * 0.37).sin().abs() * 60.0 }))
            .collect();
        let p50 = windows.iter().map(|&x| (x, 30.0 + (x * 0.11).cos().abs() * 10.0)).collect();
        let memory = (0..((end_ms / 2.0) as u64 + 20))
            .map(|i| (i as f64 * 2.0, i.min((end_ms / 2.0) as u64) * 300_000))
            .collect();
        Trace {
            strategy: strategy.to_string(),
            window_ms: 10.0,
            latency_max_us: max,
            latency_p50_us: p50,
            extra_memory_bytes: memory,
            cut_ms: 0.4,
            end_ms,
        }
    }

    fn read(path: &Path) -> String {
        let svg = std::fs::read_to_string(path).expect("readable plot");
        assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", path.display());
        svg
    }

    #[test]
    fn writes_three_plots_with_labels_and_every_strategy() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("plots");
        let mut rows = vec![
            row("cow", 180.0, Some(64 << 20), Some(512 << 20)),
            row("redis-7 (fork)", 240.0, Some(96 << 20), Some(512 << 20)),
            row("blocking", f64::NAN, None, None),
        ];
        rows[0].latency_p99_us = Some(12_000.0);
        rows[0].baseline_p99_us = Some(100.0);
        rows[0].figures.insert(crate::compare::AFTER_SAVE_FIGURE.into(), 239.0 * MIB);
        rows[0].figures.insert(crate::compare::AFTER_TRIM_FIGURE.into(), 9.0 * MIB);
        let traces = vec![
            trace("cow", 180.0, Some(50.0)),
            trace("redis-7 (fork)", 240.0, None),
            Trace { strategy: "blocking".into(), cut_ms: f64::NAN, end_ms: f64::NAN, ..Trace::default() },
        ];
        let files = write_plots(&out, &rows, &traces).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["latency.svg", "memory.svg", "summary.svg"]);

        let expected: [(&str, &[&str]); 3] = [
            (
                "latency.svg",
                &["time since BGSAVE (ms)", "write latency (µs)", "max per 10 ms window", "no latency samples"],
            ),
            (
                "memory.svg",
                &[
                    "time since BGSAVE (ms)",
                    "extra resident memory (MiB)",
                    "blocking (no samples)",
                    "cow  239→9",
                    "malloc_trim(0)",
                ],
            ),
            (
                "summary.svg",
                &[
                    "(ms)",
                    "peak extra memory (MiB)",
                    "n/a",
                    "180 ms",
                    "64.0 MiB (12 % of its own data)",
                    "Write p99: without → during the save",
                    "12.0 ms (base 100 µs, ×120.0)",
                    "512 → 576 MiB",
                ],
            ),
        ];
        for (file, labels) in expected {
            let svg = read(&out.join(file));
            for label in labels {
                assert!(svg.contains(label), "{file} lacks {label:?}");
            }
            for strategy in ["cow", "redis-7 (fork)", "blocking"] {
                assert!(svg.contains(strategy), "{file} lacks {strategy:?}");
            }
        }
    }

    /// A panel's title gives the table's figure (the worst write due during the save) as
    /// "max during save", and a worse write outside the save only as "worst in view": a
    /// spike before BGSAVE is not passed off as the save's.
    #[test]
    fn latency_titles_use_the_tables_max_and_label_a_worse_one_outside_the_save() {
        let mut r = row("cow", 180.0, None, None);
        r.latency_max_us = Some(4_000.0);
        let spike_before = trace("cow", 180.0, Some(-100.0));
        let title = latency_caption("cow", Some(&r), Some(&spike_before));
        assert!(title.contains("max during save 4.00 ms") && title.contains("worst in view 40.0 ms"), "{title}");
        let calm = trace("cow", 180.0, None);
        let title = latency_caption("cow", Some(&r), Some(&calm));
        assert!(title.contains("max during save 4.00 ms") && !title.contains("worst in view"), "{title}");
        r.overloaded = true;
        assert!(latency_caption("cow", Some(&r), Some(&calm)).starts_with("cow (OVERLOADED)"));
    }

    #[test]
    fn nothing_to_plot_still_writes_files() {
        let dir = tempfile::tempdir().unwrap();
        // A row without a trace, a trace without a row, and no data at all.
        let files = write_plots(dir.path(), &[row("clone", 0.0, None, Some(0))], &[Trace::default()]).unwrap();
        for f in &files {
            read(f);
        }
        let files = write_plots(dir.path(), &[], &[]).unwrap();
        assert_eq!(files.len(), 3);
        for f in &files {
            read(f);
        }
    }

    #[test]
    fn ticks_and_durations_read_well() {
        assert_eq!(fmt_tick(100_000.0), "100 000");
        assert_eq!(fmt_tick(-1500.0), "-1500");
        assert_eq!(fmt_tick(0.5), "0.5");
        assert_eq!(fmt_tick(-0.0), "0");
        assert_eq!(fmt_ms(0.4), "0.40 ms");
        assert_eq!(fmt_us(40_000.0), "40.0 ms");
    }
}
