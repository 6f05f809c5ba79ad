//! Plots of a run, drawn from `metrics.jsonl` as standalone SVG files: the loss, the per-head
//! temperatures and the kNN accuracy over training.

use std::fmt::Write as _;
use std::path::Path;

use amcl_core::methods::HeadDiagnostics;
use anyhow::Result;

use crate::files::write_atomic;
use crate::metrics::{self, Record};

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Index into the palette (series of one head share a colour).
    pub colour: usize,
}

const PALETTE: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// A line chart as an SVG document. `log_y` plots log10 of positive values.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 400.0, 70.0, 170.0, 40.0, 50.0);
    let ty = |y: f64| if log_y { y.max(1e-12).log10() } else { y };
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, y)| (x, ty(y))))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (mut x0, mut x1) = bounds(all.iter().map(|p| p.0));
    let (mut y0, mut y1) = bounds(all.iter().map(|p| p.1));
    if x1 - x0 < 1e-12 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    if y1 - y0 < 1e-12 {
        (y0, y1) = (y0 - 1.0, y1 + 1.0);
    }
    let (pw, ph) = (w - left - right, h - top - bottom);
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| top + ph - (y - y0) / (y1 - y0) * ph;
    let mut svg = svg_start(w, h, left + pw / 2.0, title);
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
        let ylabel = if log_y { format_number(10f64.powf(y)) } else { format_number(y) };
        let _ = write!(
            svg,
            r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#ddd"/><text x="{0}" y="{3}" text-anchor="middle">{4}</text>
<line x1="{5}" y1="{6}" x2="{7}" y2="{6}" stroke="#ddd"/><text x="{8}" y="{9}" text-anchor="end">{10}</text>
"##,
            sx(x),
            top,
            top + ph,
            top + ph + 16.0,
            format_number(x),
            left,
            sy(y),
            left + pw,
            left - 6.0,
            sy(y) + 4.0,
            ylabel
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}{}</text>
"##,
        left + pw / 2.0,
        h - 10.0,
        escape(x_label),
        top + ph / 2.0,
        top + ph / 2.0,
        escape(y_label),
        if log_y { " (log scale)" } else { "" }
    );
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[s.colour % PALETTE.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| (x, ty(y)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let dash = if s.dashed { r#" stroke-dasharray="5,3""# } else { "" };
        if points.len() == 1 {
            let (x, y) = points[0].split_once(',').expect("x,y");
            let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#);
        } else {
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{}"/>"#,
                points.join(" ")
            );
        }
        let ly = top + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{3}" y="{4}">{5}</text>"#,
            left + pw + 10.0,
            ly,
            left + pw + 30.0,
            left + pw + 36.0,
            ly + 4.0,
            escape(&s.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The opening of a `w` x `h` SVG document on white, with `title` centred at `title_x`.
fn svg_start(w: f64, h: f64, title_x: f64, title: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{title_x}" y="22" text-anchor="middle" font-size="15">{}</text>
"##,
        escape(title)
    )
}

/// The smallest of 1, 2, 2.5, 5 or 10 times a power of ten that is at least `x` (> 0).
fn nice_step(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    let mantissa = x / power;
    let nice =
        [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|m| *m >= mantissa - 1e-9).unwrap_or(10.0);
    nice * power
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

fn format_number(v: f64) -> String {
    if v == 0.0 || (1e-2..1e4).contains(&v.abs()) {
        format!("{:.3}", v).trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Writes `loss.svg`, `temperatures.svg` and `accuracy.svg` into `run` from its metrics.jsonl.
pub fn write_run_plots(run: &Path) -> Result<()> {
    let records = metrics::read(run);
    let steps: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Step(s) => Some((s.step as f64, s.loss as f64)),
            Record::Epoch(_) => None,
        })
        .collect();
    let epochs = metrics::epochs(run);
    let epoch_loss: Vec<(f64, f64)> = epochs.iter().map(|e| (e.step as f64, e.loss)).collect();
    let loss = line_chart(
        "Training loss",
        "step",
        "loss",
        &[
            Series { label: "per step".into(), points: steps, dashed: false, colour: 0 },
            Series { label: "epoch mean".into(), points: epoch_loss, dashed: true, colour: 1 },
        ],
        false,
    );
    let heads = epochs.last().map_or(0, |e| e.heads.len());
    let mut temps = Vec::new();
    type Stat = fn(&HeadDiagnostics) -> f32;
    let stats: [(Stat, &str, bool); 2] =
        [(|h| h.tau_pos_mean, "tau+", false), (|h| h.tau_neg_mean, "tau-", true)];
    for c in 0..heads {
        for (stat, name, dashed) in stats {
            let points = epochs
                .iter()
                .filter_map(|e| Some((e.epoch as f64, stat(e.heads.get(c)?) as f64)))
                .collect();
            temps.push(Series { label: format!("head {c} {name}"), points, dashed, colour: c });
        }
    }
    let temperatures =
        line_chart("Adaptive temperatures (mean per epoch)", "epoch", "tau", &temps, true);
    let knn: Vec<(f64, f64)> =
        epochs.iter().filter_map(|e| Some((e.epoch as f64, e.knn_top1? as f64 * 100.0))).collect();
    let accuracy = line_chart(
        "kNN top-1 on the test set (k = 200, t = 0.1)",
        "epoch",
        "top-1 (%)",
        &[Series { label: "kNN top-1".into(), points: knn, dashed: false, colour: 0 }],
        false,
    );
    for (name, svg) in
        [("loss.svg", loss), ("temperatures.svg", temperatures), ("accuracy.svg", accuracy)]
    {
        write_atomic(&run.join(name), svg.as_bytes())?;
    }
    Ok(())
}

/// One bar of a [`bar_chart`]: a mean with a +-std whisker.
pub struct Bar {
    pub label: String,
    pub mean: f64,
    pub std: f64,
    /// Index into the palette; bars with the same label share it.
    pub colour: usize,
}

/// Bars side by side under one label.
pub struct BarGroup {
    pub label: String,
    pub bars: Vec<Bar>,
}

/// A grouped bar chart with error whiskers as an SVG document; the y axis starts at 0.
pub fn bar_chart(title: &str, y_label: &str, groups: &[BarGroup]) -> String {
    let per_group = groups.iter().map(|g| g.bars.len()).max().unwrap_or(1).max(1);
    let slot = 22.0 * per_group as f64 + 30.0;
    let (left, right, top, bottom, h) = (70.0, 110.0, 40.0, 80.0, 400.0);
    let pw = (slot * groups.len() as f64).max(200.0);
    let w = left + pw + right;
    let ph = h - top - bottom;
    let top_value = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.mean + b.std))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Three to six gridlines at round values (a tick of 1, 2, 2.5 or 5 times a power of ten),
    // whichever count ends closest above the tallest whisker.
    let top_value = if top_value > 0.0 { top_value * 1.05 } else { 1.0 };
    let (ticks, tick) = (3..=6)
        .map(|n| (n, nice_step(top_value / n as f64)))
        .min_by(|a, b| (a.0 as f64 * a.1).total_cmp(&(b.0 as f64 * b.1)))
        .expect("four candidates");
    let y1 = ticks as f64 * tick;
    let sy = |y: f64| top + ph - (y / y1).clamp(0.0, 1.0) * ph;
    let mut svg = svg_start(w, h, left + pw / 2.0, title);
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{0}" text-anchor="middle" transform="rotate(-90 16 {0})">{1}</text>"#,
        top + ph / 2.0,
        escape(y_label)
    );
    for i in 0..=ticks {
        let y = tick * i as f64;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#ddd"/><text x="{2}" y="{3}" text-anchor="end">{4}</text>"##,
            sy(y),
            left + pw,
            left - 6.0,
            sy(y) + 4.0,
            format_number(y)
        );
    }
    let mut legend: Vec<(String, usize)> = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let x0 = left + g as f64 * slot + 15.0;
        for (b, bar) in group.bars.iter().enumerate() {
            let colour = PALETTE[bar.colour % PALETTE.len()];
            let x = x0 + 22.0 * b as f64;
            let mean = if bar.mean.is_finite() { bar.mean } else { 0.0 };
            let _ = writeln!(
                svg,
                r#"<rect x="{x}" y="{0:.1}" width="18" height="{1:.1}" fill="{colour}"><title>{2}: {3:.2} ± {4:.2}</title></rect>"#,
                sy(mean),
                top + ph - sy(mean),
                escape(&bar.label),
                bar.mean,
                bar.std
            );
            if bar.std > 0.0 && bar.std.is_finite() {
                let cx = x + 9.0;
                let _ = writeln!(
                    svg,
                    r##"<line x1="{cx}" y1="{0:.1}" x2="{cx}" y2="{1:.1}" stroke="#222"/><line x1="{2}" y1="{0:.1}" x2="{3}" y2="{0:.1}" stroke="#222"/><line x1="{2}" y1="{1:.1}" x2="{3}" y2="{1:.1}" stroke="#222"/>"##,
                    sy(mean + bar.std),
                    sy(mean - bar.std),
                    cx - 4.0,
                    cx + 4.0
                );
            }
            if !legend.iter().any(|(l, _)| *l == bar.label) {
                legend.push((bar.label.clone(), bar.colour));
            }
        }
        let cx = x0 + 11.0 * group.bars.len() as f64;
        let ly = top + ph + 14.0;
        let _ = writeln!(
            svg,
            r#"<text x="{cx}" y="{ly}" text-anchor="end" transform="rotate(-35 {cx} {ly})">{}</text>"#,
            escape(&group.label)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#444"/>"##,
        top + ph,
        left + pw
    );
    for (i, (label, colour)) in legend.iter().enumerate() {
        let ly = top + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{0}" y="{1}" width="14" height="10" fill="{2}"/><text x="{3}" y="{4}">{5}</text>"#,
            left + pw + 10.0,
            ly - 5.0,
            PALETTE[colour % PALETTE.len()],
            left + pw + 30.0,
            ly + 4.0,
            escape(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_chart_ticks_are_round_numbers() {
        assert_eq!(nice_step(9.9), 10.0);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(2.2), 2.5);
        assert_eq!(nice_step(1.0), 1.0);
        let svg = bar_chart(
            "t",
            "y",
            &[BarGroup {
                label: "g".into(),
                bars: vec![Bar { label: "b".into(), mean: 37.7, std: 2.0, colour: 0 }],
            }],
        );
        // 37.7 + 2 -> ticks of 10 up to 40.
        assert!(svg.contains(">40<") && svg.contains(">20<"), "{svg}");
    }
}
