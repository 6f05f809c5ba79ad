//! Plots as standalone SVG files, drawn with plotters: a run's loss, per-head temperatures and kNN
//! accuracy over training (from its `metrics.jsonl`), and an experiment's bar charts.

use std::path::Path;

use amcl_core::methods::HeadDiagnostics;
use anyhow::Result;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

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

const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// What drawing into an SVG string can fail with, as text.
fn drawing<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {error:?}")
}

/// A line chart as an SVG document (plotters). `log_y` plots the y axis on a log scale.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<String> {
    let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let all: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied().filter(finite)).collect();
    let widen = |(lo, hi): (f64, f64)| {
        if !lo.is_finite() {
            (0.0, 1.0)
        } else if hi - lo < 1e-12 {
            (lo - lo.abs().max(1.0) * 0.5, hi + hi.abs().max(1.0) * 0.5)
        } else {
            (lo, hi)
        }
    };
    let (x0, x1) = widen(bounds(all.iter().map(|p| p.0)));
    let (y0, y1) = widen(bounds(all.iter().map(|p| p.1)));
    // A log scale only where the values span more than a decade (within one, it has no ticks).
    let log_y = log_y && y0 > 0.0 && y1 / y0 > 10.0;
    let y_label = if log_y { format!("{y_label} (log scale)") } else { y_label.to_string() };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root);
        chart
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56);
        // The same drawing on either y scale.
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label.as_str())
                    .x_labels(6)
                    .y_labels(6)
                    .x_label_formatter(&|x| format_number(*x))
                    .y_label_formatter(&|y| format_number(*y))
                    .light_line_style(WHITE.mix(0.0))
                    .draw()
                    .map_err(drawing)?;
                for s in series {
                    let style = colour(s.colour).stroke_width(2);
                    let points: Vec<(f64, f64)> = s.points.iter().copied().filter(finite).collect();
                    let drawn = match points.len() {
                        0 => continue,
                        1 => chart
                            .draw_series(points.iter().map(|&p| Circle::new(p, 3, style.filled())))
                            .map_err(drawing)?,
                        _ if s.dashed => chart
                            .draw_series(DashedLineSeries::new(points, 6, 4, style))
                            .map_err(drawing)?,
                        _ => chart.draw_series(LineSeries::new(points, style)).map_err(drawing)?,
                    };
                    let legend = colour(s.colour).stroke_width(2);
                    let drawn = drawn.label(s.label.as_str());
                    if s.dashed {
                        drawn.legend(move |(x, y)| {
                            DashedPathElement::new(vec![(x, y), (x + 18, y)], 5, 3, legend)
                        });
                    } else {
                        drawn.legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], legend)
                        });
                    }
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .draw()
                    .map_err(drawing)?;
            }};
        }
        if log_y {
            draw!(chart.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(drawing)?);
        } else {
            let pad = (y1 - y0) * 0.05;
            draw!(chart.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad)).map_err(drawing)?);
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// The smallest of 1, 2, 2.5, 5 or 10 times a power of ten that is at least `x` (> 0).
fn nice_step(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    let mantissa = x / power;
    let nice =
        [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|m| *m >= mantissa - 1e-9).unwrap_or(10.0);
    nice * power
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
    )?;
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
        line_chart("Adaptive temperatures (mean per epoch)", "epoch", "tau", &temps, true)?;
    let knn: Vec<(f64, f64)> =
        epochs.iter().filter_map(|e| Some((e.epoch as f64, e.knn_top1? as f64 * 100.0))).collect();
    let accuracy = line_chart(
        "kNN top-1 on the test set (k = 200, t = 0.1)",
        "epoch",
        "top-1 (%)",
        &[Series { label: "kNN top-1".into(), points: knn, dashed: false, colour: 0 }],
        false,
    )?;
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

/// A grouped bar chart with error whiskers as an SVG document (plotters); the y axis starts at
/// 0 and ends at a round number above the tallest whisker.
pub fn bar_chart(title: &str, y_label: &str, groups: &[BarGroup]) -> Result<String> {
    let per_group = groups.iter().map(|g| g.bars.len()).max().unwrap_or(1).max(1);
    // Each group takes one unit of x: its bars side by side, then a gap.
    let bar_width = 0.8 / per_group as f64;
    // Room for each group's horizontal label, and a legend column on the right.
    let slot = (22 * per_group as u32 + 30).max(110);
    let plot_width = (groups.len() as u32 * slot).max(200);
    let width = plot_width + 70 + 140;
    let tallest = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.mean + b.std.max(0.0)))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Three to six gridlines at round values, whichever count ends closest above the tallest.
    let tallest = if tallest > 0.0 { tallest * 1.05 } else { 1.0 };
    let (ticks, tick) = (3..=6)
        .map(|n| (n, nice_step(tallest / n as f64)))
        .min_by(|a, b| (a.0 as f64 * a.1).total_cmp(&(b.0 as f64 * b.1)))
        .expect("four candidates");
    let y1 = ticks as f64 * tick;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (plot, legend_area) = root.split_horizontally(width - 140);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..groups.len().max(1) as f64, 0.0..y1)
            .map_err(drawing)?;
        let label_of = |x: &f64| {
            let g = x.floor() as usize;
            let centre = (x - x.floor() - 0.5).abs() < 1e-6;
            if centre {
                groups.get(g).map_or(String::new(), |g| g.label.clone())
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .y_desc(y_label)
            .y_labels(ticks + 1)
            .y_label_formatter(&|y| format_number(*y))
            .x_labels(groups.len().max(1) * 2 + 1)
            .x_label_formatter(&label_of)
            .draw()
            .map_err(drawing)?;
        let mut legend: Vec<(String, usize)> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let start = g as f64 + 0.5 - bar_width * group.bars.len() as f64 / 2.0;
            for (b, bar) in group.bars.iter().enumerate() {
                let left = start + bar_width * b as f64;
                let mean = if bar.mean.is_finite() { bar.mean } else { 0.0 };
                let fill = colour(bar.colour).filled();
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(left + 0.05 * bar_width, 0.0), (left + 0.95 * bar_width, mean)],
                        fill,
                    )))
                    .map_err(drawing)?;
                if !legend.iter().any(|(l, _)| *l == bar.label) {
                    legend.push((bar.label.clone(), bar.colour));
                }
                if bar.std > 0.0 && bar.std.is_finite() {
                    // The whisker: mean - std to mean + std, with caps.
                    let (centre, cap) = (left + bar_width / 2.0, bar_width * 0.2);
                    let (lo, hi) = ((mean - bar.std).max(0.0), mean + bar.std);
                    let whisker = [
                        vec![(centre, lo), (centre, hi)],
                        vec![(centre - cap, lo), (centre + cap, lo)],
                        vec![(centre - cap, hi), (centre + cap, hi)],
                    ];
                    chart
                        .draw_series(whisker.map(|path| PathElement::new(path, BLACK)))
                        .map_err(drawing)?;
                }
            }
        }
        // The legend beside the chart, where it covers no bar.
        for (i, (label, c)) in legend.iter().enumerate() {
            let y = 50 + 20 * i as i32;
            let swatch = Rectangle::new([(4, y - 6), (18, y + 6)], colour(*c).filled());
            legend_area.draw(&swatch).map_err(drawing)?;
            let text = Text::new(label.clone(), (24, y - 7), ("sans-serif", 13));
            legend_area.draw(&text).map_err(drawing)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

fn format_number(v: f64) -> String {
    if v == 0.0 || (1e-2..1e4).contains(&v.abs()) {
        format!("{:.3}", v).trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
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
        )
        .unwrap();
        // 37.7 + 2 (and 5 % headroom) -> round ticks of 10, up to 50.
        let texts: Vec<&str> = svg.split("<text").filter_map(|t| t.split('>').nth(1)).collect();
        let texts: Vec<&str> = texts.iter().map(|t| t.trim_end_matches("</text").trim()).collect();
        for tick in ["0", "10", "20", "30", "40", "50"] {
            assert!(texts.contains(&tick), "tick {tick} in {texts:?}");
        }
        assert!(!texts.contains(&"45") && !texts.contains(&"60"), "{texts:?}");
    }
}
