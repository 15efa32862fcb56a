//! The PNG chart: throughput and latency percentiles over time.
//!
//! Owns: [`draw`]: two panels (deliveries/s and acks/s; p50, p99 and p99.9
//! latency of deliveries, or of acks when nothing was delivered) with the
//! plotters bitmap backend. Text needs a TrueType font: the first of
//! `GIFTSTREAM_LOADTEST_FONT` and a few usual system paths; without one
//! the chart is drawn without text.
//! Must not: fail a run: the caller reports a chart error and goes on.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::metrics::{Percentiles, TimePoint};

/// A line to draw: its legend, its colour, and its value at one sample.
type Line<T> = (&'static str, RGBColor, fn(&T) -> f64);

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
];

/// Register a font once; answers whether text can be drawn.
fn font() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let env = std::env::var("GIFTSTREAM_LOADTEST_FONT").ok();
        env.iter()
            .map(String::as_str)
            .chain(FONT_PATHS.iter().copied())
            .filter_map(|p| std::fs::read(p).ok())
            .any(|bytes| {
                // The font must live as long as the process: leak it once.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
    })
}

/// Draw `timeline` into a PNG at `path` titled `title`.
pub fn draw(path: &Path, title: &str, timeline: &[TimePoint]) -> anyhow::Result<()> {
    anyhow::ensure!(!timeline.is_empty(), "no samples to chart");
    let text = font();
    let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(400);
    let t_max = timeline.last().map_or(1.0, |p| p.t_s).max(1.0);

    let rate_max = timeline
        .iter()
        .map(|p| p.deliveries_per_s.max(p.acks_per_s))
        .fold(1.0, f64::max)
        * 1.1;
    let mut b = ChartBuilder::on(&top);
    b.margin(12);
    if text {
        b.caption(format!("{title}: throughput"), ("sans-serif", 20))
            .x_label_area_size(30)
            .y_label_area_size(80);
    }
    let mut c = b.build_cartesian_2d(0.0..t_max, 0.0..rate_max)?;
    let mut mesh = c.configure_mesh();
    if text {
        mesh.x_desc("s").y_desc("per second");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    let series: [Line<TimePoint>; 2] = [
        ("deliveries/s", BLUE, |p| p.deliveries_per_s),
        ("acks/s", RED, |p| p.acks_per_s),
    ];
    for (name, color, f) in series {
        let s = c.draw_series(LineSeries::new(
            timeline.iter().map(|p| (p.t_s, f(p))),
            color.stroke_width(2),
        ))?;
        if text {
            s.label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if text {
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    }

    let deliveries = timeline.iter().any(|p| p.delivery.count > 0);
    let pick = |p: &TimePoint| -> Percentiles {
        if deliveries {
            p.delivery
        } else {
            p.ack
        }
    };
    let lat_max = timeline.iter().map(|p| pick(p).p999_ms).fold(1.0, f64::max) * 1.1;
    let mut b = ChartBuilder::on(&bottom);
    b.margin(12);
    if text {
        let what = if deliveries {
            "gift -> viewer"
        } else {
            "gift -> ack"
        };
        b.caption(format!("{title}: {what} latency"), ("sans-serif", 20))
            .x_label_area_size(30)
            .y_label_area_size(80);
    }
    let mut c = b.build_cartesian_2d(0.0..t_max, 0.0..lat_max)?;
    let mut mesh = c.configure_mesh();
    if text {
        mesh.x_desc("s").y_desc("ms");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    let series: [Line<Percentiles>; 3] = [
        ("p50", GREEN, |p| p.p50_ms),
        ("p99", BLUE, |p| p.p99_ms),
        ("p99.9", RED, |p| p.p999_ms),
    ];
    for (name, color, f) in series {
        let pts = timeline
            .iter()
            .filter(|p| pick(p).count > 0)
            .map(|p| (p.t_s, f(&pick(p))));
        let s = c.draw_series(LineSeries::new(pts, color.stroke_width(2)))?;
        if text {
            s.label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if text {
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
