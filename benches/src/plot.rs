//! PNG plots with plotters' bitmap backend: the FWQ traces of the LWK and
//! Linux on one chart, and the latency distributions (CDFs) of the system
//! calls and of launch. Text uses DejaVu Sans from Debian's
//! fonts-dejavu-core, loaded at run time (no fontconfig needed).

use crate::bench::fwq::FwqResult;
use crate::bench::gups::Mode;
use crate::bench::stream::KERNELS;
use crate::bench::syscall::OPS;
use crate::report::{num, SideResults};
use crate::stats;
use anyhow::{anyhow, bail, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

const LWK_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const LINUX_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// Tick values for a log axis over [lo, hi]: powers of ten, refined with
/// 2 and 5, then with more mantissas, until there are at least three
/// (plotters' own log ticks leave an axis of less than a decade bare).
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    const MANTISSAS: [&[f64]; 4] = [
        &[1.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0],
        &[
            1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0,
        ],
    ];
    if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let mut best = Vec::new();
    for ms in MANTISSAS {
        let mut v = Vec::new();
        let mut decade = 10f64.powi(lo.log10().floor() as i32);
        while decade <= hi {
            for m in ms {
                let x = m * decade;
                if x >= lo && x <= hi {
                    v.push(x);
                }
            }
            decade *= 10.0;
        }
        best = v;
        if best.len() >= 3 {
            break;
        }
    }
    best
}

/// A tick label: up to three significant digits, no trailing zeros.
fn tick(v: f64) -> String {
    if v.abs() >= 1e6 {
        return format!("{}M", tick(v / 1e6));
    }
    if v.abs() >= 1e4 {
        return format!("{}k", tick(v / 1e3));
    }
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plotting: {e}")
}

/// Registers DejaVu Sans as "sans-serif" once.
pub fn load_font() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let path = FONT_PATHS
            .iter()
            .find(|p| Path::new(p).is_file())
            .ok_or_else(|| {
                format!(
                    "no font at {} (install fonts-dejavu-core)",
                    FONT_PATHS.join(" or ")
                )
            })?;
        let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
        // Leaked once: plotters keeps registered fonts for the whole process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{path} is not a usable font"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// One sample set to draw, with its legend label and color.
struct Series<'a> {
    label: String,
    color: RGBColor,
    data: &'a [f64],
}

/// The FWQ traces: quantum length against quantum number, both sides on
/// one logarithmic time axis, each side's median-noise run.
pub fn fwq(path: &Path, lwk: Option<&FwqResult>, linux: Option<&FwqResult>) -> Result<()> {
    load_font()?;
    let mut series = Vec::new();
    // Linux first, so the (normally flat) LWK trace is drawn on top.
    for (name, color, r) in [("Linux", LINUX_COLOR, linux), ("LWK", LWK_COLOR, lwk)] {
        if let Some(r) = r {
            let run = r.representative();
            series.push(Series {
                label: format!(
                    "{name}: noise {}%, max/min {}, stddev {} us",
                    num(run.stats.noise_pct),
                    num(run.stats.max_over_min),
                    num(run.stats.summary.stddev)
                ),
                color,
                data: &run.quanta_us,
            });
        }
    }
    if series.is_empty() {
        bail!("no FWQ data to plot");
    }
    let lo = series
        .iter()
        .flat_map(|s| s.data)
        .cloned()
        .fold(f64::INFINITY, f64::min);
    let hi = series
        .iter()
        .flat_map(|s| s.data)
        .cloned()
        .fold(0.0, f64::max);
    let n = series.iter().map(|s| s.data.len()).max().unwrap_or(1);

    let root = BitMapBackend::new(path, (1400, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "FWQ: length of each fixed work quantum (lower and flatter is quieter)",
            ("sans-serif", 26),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(
            0f64..n as f64,
            (lo * 0.97..hi * 1.5)
                .log_scale()
                .with_key_points(log_ticks(lo * 0.97, hi * 1.5)),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("quantum number")
        .y_desc("quantum length (us, log scale)")
        .axis_desc_style(("sans-serif", 20))
        .label_style(("sans-serif", 16))
        .y_label_formatter(&|v| tick(*v))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    for s in &series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(
                s.data.iter().enumerate().map(|(i, v)| (i as f64, *v)),
                color.stroke_width(1),
            ))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One CDF panel: fraction of samples at or below x, x on a log scale
/// clipped at the 99.9th percentile so that one outlier does not squash
/// the picture.
fn cdf_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    series: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if series.is_empty() {
        area.titled(title, ("sans-serif", 22))
            .map_err(err)?
            .draw(&Text::new("no data", (200, 120), ("sans-serif", 20)))
            .map_err(err)?;
        return Ok(());
    }
    let sorted: Vec<Vec<f64>> = series.iter().map(|s| stats::sorted(s.data)).collect();
    let lo = sorted
        .iter()
        .map(|s| s[0])
        .fold(f64::INFINITY, f64::min)
        .max(1e-3);
    let hi = sorted
        .iter()
        .filter_map(|s| stats::percentile_sorted(s, 99.9))
        .fold(0.0, f64::max)
        .max(lo * 1.5);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(
            (lo * 0.9..hi * 1.1)
                .log_scale()
                .with_key_points(log_ticks(lo * 0.9, hi * 1.1)),
            0f64..1.0,
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!("latency ({unit}, log scale)"))
        .y_desc("fraction of calls")
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|v| tick(*v))
        .draw()
        .map_err(err)?;
    for (s, sorted) in series.iter().zip(&sorted) {
        let color = s.color;
        // Start at (min, 0) so the step up at the fastest sample shows.
        let pts = std::iter::once((sorted[0], 0.0))
            .chain(stats::cdf(sorted, 400))
            .filter(|(x, _)| *x <= hi * 1.1);
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Latency CDFs of every system call and of launch, LWK against Linux.
pub fn latencies(
    path: &Path,
    lwk: Option<&SideResults>,
    linux: Option<&SideResults>,
) -> Result<()> {
    load_font()?;
    let root = BitMapBackend::new(path, (1500, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            "Latency distributions: LWK (under mcexec) against Linux (pinned, same binary)",
            ("sans-serif", 26),
        )
        .map_err(err)?;
    let panels = root.split_evenly((3, 3));
    let sides = [("LWK", LWK_COLOR, lwk), ("Linux", LINUX_COLOR, linux)];
    for (op, area) in OPS.iter().zip(panels.iter()) {
        let mut series = Vec::new();
        for (name, color, side) in sides {
            if let Some(Some(Ok(r))) = side.map(|s| s.syscall(op.arg)) {
                series.push(Series {
                    label: format!("{name}: median {} ns", num(r.median())),
                    color,
                    data: &r.lat_ns,
                });
            }
        }
        let kind = if op.local { "LWK-local" } else { "offloaded" };
        cdf_panel(area, &format!("{} ({kind})", op.label), "ns", &series)?;
    }
    let mut series = Vec::new();
    for (name, color, side) in sides {
        if let Some(Ok(ms)) = side.map(|s| &s.launch_ms) {
            series.push(Series {
                label: format!(
                    "{name}: median {} ms",
                    num(stats::median(ms).unwrap_or(f64::NAN))
                ),
                color,
                data: ms,
            });
        }
    }
    cdf_panel(&panels[OPS.len()], "launch of busybox true", "ms", &series)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One bar of a bar panel.
struct Bar {
    group: String,
    label: &'static str,
    color: RGBColor,
    value: f64,
}

/// Bars grouped by `group`, in order, each with its value written above it.
fn bar_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    bars: &[Bar],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut groups: Vec<&str> = Vec::new();
    for b in bars {
        if !groups.contains(&b.group.as_str()) {
            groups.push(&b.group);
        }
    }
    let top = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    if groups.is_empty() || top.is_nan() || top <= 0.0 {
        area.titled(title, ("sans-serif", 22))
            .map_err(err)?
            .draw(&Text::new("no data", (200, 120), ("sans-serif", 20)))
            .map_err(err)?;
        return Ok(());
    }
    let n = groups.len() as f64;
    let names: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(75)
        .build_cartesian_2d(0f64..n, 0f64..top * 1.15)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 1e-6 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(unit)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 15))
        .y_label_formatter(&|v| tick(*v))
        .draw()
        .map_err(err)?;
    let mut legend_done: Vec<&str> = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let members: Vec<&Bar> = bars.iter().filter(|b| b.group == *g).collect();
        let w = 0.8 / members.len() as f64;
        for (bi, b) in members.iter().enumerate() {
            let x0 = gi as f64 + 0.1 + bi as f64 * w;
            let color = b.color;
            let series = chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x0 + w * 0.92, b.value)],
                    color.filled(),
                )))
                .map_err(err)?;
            if !legend_done.contains(&b.label) {
                legend_done.push(b.label);
                series.label(b.label).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled())
                });
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    num(b.value),
                    (x0 + w * 0.1, b.value + top * 0.05),
                    ("sans-serif", 14),
                )))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// STREAM and GUPS medians as bars, LWK beside Linux.
pub fn memory(path: &Path, lwk: Option<&SideResults>, linux: Option<&SideResults>) -> Result<()> {
    load_font()?;
    let root = BitMapBackend::new(path, (1500, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            "Memory: STREAM bandwidth and GUPS random updates (higher is better)",
            ("sans-serif", 26),
        )
        .map_err(err)?;
    let (left, right) = root.split_horizontally(900);
    let mut stream = Vec::new();
    for (k, name) in KERNELS.iter().enumerate() {
        for (label, color, side) in [("LWK", LWK_COLOR, lwk), ("Linux", LINUX_COLOR, linux)] {
            if let Some(Ok(r)) = side.map(|s| &s.stream) {
                stream.push(Bar {
                    group: name.to_string(),
                    label,
                    color,
                    value: r.median(k),
                });
            }
        }
    }
    bar_panel(&left, "STREAM (single thread)", "MB/s", &stream)?;
    let mut gups = Vec::new();
    let runs = [
        ("LWK", LWK_COLOR, lwk, Mode::Default, "LWK"),
        ("Linux", LINUX_COLOR, linux, Mode::NoHuge, "Linux THP off"),
        ("Linux", LINUX_COLOR, linux, Mode::Huge, "Linux THP on"),
    ];
    for (label, color, side, mode, group) in runs {
        if let Some(Some(Ok(r))) = side.map(|s| s.gups(mode)) {
            gups.push(Bar {
                group: group.to_string(),
                label,
                color,
                value: r.median(),
            });
        }
    }
    bar_panel(&right, "GUPS (1 process)", "GUP/s", &gups)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_ticks;

    #[test]
    fn log_ticks_cover_short_and_long_ranges() {
        assert_eq!(log_ticks(1.0, 1000.0), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(100.0, 300.0), vec![100.0, 150.0, 200.0, 300.0]);
        let t = log_ticks(35.0, 60.0);
        assert!(
            t.len() >= 3 && t.iter().all(|x| (35.0..=60.0).contains(x)),
            "{t:?}"
        );
        assert!(log_ticks(0.0, 1.0).is_empty());
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(super::tick(1000.0), "1000");
        assert_eq!(super::tick(20000.0), "20k");
        assert_eq!(super::tick(1_500_000.0), "1.5M");
        assert_eq!(super::tick(0.5), "0.5");
        assert_eq!(super::tick(150.0), "150");
    }
}
