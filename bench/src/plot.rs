//! Latency-by-percentile chart, drawn the way HdrHistogram's plotter draws
//! `.hgrm` files: x is 1/(1-p) on a log scale, labelled as percentiles.

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::report::NS_PER_US;

/// Writes a chart of `h` (nanoseconds) to `path` (.svg or .png).
pub fn save_plot(path: &str, title: &str, h: &Histogram<u64>) -> Result<(), String> {
    let points = curve(h);
    if points.is_empty() {
        return Err("no samples to plot".into());
    }
    let x_max = points.last().map_or(10.0, |p| p.0).max(10.0);
    let x_max = 10f64.powf(x_max.log10().ceil());
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1;
    let size = (1000, 600);
    if path.ends_with(".png") {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw(root, title, &points, x_max, y_max)
    } else if path.ends_with(".svg") {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw(root, title, &points, x_max, y_max)
    } else {
        Err(format!("{path}: plot file must end in .svg or .png"))
    }
}

/// The (1/(1-p), latency in us) points of `h`, leaving out p = 1.
fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| {
            (
                v.quantile_iterated_to(),
                v.value_iterated_to() as f64 / NS_PER_US,
            )
        })
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, us)| (1.0 / (1.0 - q), us))
        .collect()
}

/// "0%", "90%", "99%", "99.9%" ... for x = 1, 10, 100, 1000.
fn percentile_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let digits = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{p:.digits$}%")
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    points: &[(f64, f64)],
    x_max: f64,
    y_max: f64,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us)")
        .x_label_formatter(&percentile_label)
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_follow_the_nines() {
        assert_eq!(percentile_label(&1.0), "0%");
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&100.0), "99%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
        assert_eq!(percentile_label(&10000.0), "99.99%");
    }
}
