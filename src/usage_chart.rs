//! The `/usage` chart: a month of jobs and spend per day as a PNG. Pure: figures in, bytes out.
//!
//! Readable without colour: jobs are solid bars against the left axis, spend a line with round
//! markers against the right axis, the budget a dashed line; the legend names each by its shape.
//! The font is embedded (DejaVu Sans, `assets/`), since the container has no system fonts.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::sync::Once;

use plotters::prelude::*;

/// Size of the chart: readable on a phone, small to upload.
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 480;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// One day of the month.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Day {
    /// Day of the month, 1-based.
    pub day: u32,
    /// Jobs that count (refunds excluded).
    pub jobs: u32,
    /// US dollars the provider reported for those jobs.
    pub spend: Decimal,
}

#[derive(Debug, thiserror::Error)]
#[error("drawing the usage chart failed: {0}")]
pub struct ChartError(String);

fn failed(e: impl std::fmt::Display) -> ChartError {
    ChartError(e.to_string())
}

/// Draws the month (`days_in_month` days; `days` may skip days without jobs) up to `today`, with
/// the budget line when there is one. Spend is shown as the month's running total, so it meets the
/// budget line where the month's money runs out. Returns PNG bytes.
pub fn render(
    title: &str,
    days: &[Day],
    days_in_month: u32,
    today: u32,
    budget: Option<Decimal>,
) -> Result<Vec<u8>, ChartError> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The embedded font is valid; a failure would only show as missing labels.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });

    let mut jobs = vec![0u32; days_in_month as usize];
    let mut spend = vec![Decimal::ZERO; days_in_month as usize];
    for d in days.iter().filter(|d| (1..=days_in_month).contains(&d.day)) {
        jobs[d.day as usize - 1] += d.jobs;
        spend[d.day as usize - 1] += d.spend;
    }
    // Money is added up exactly; only the drawing's coordinates are floating point.
    let cumulative: Vec<f64> = spend
        .iter()
        .take(today.clamp(1, days_in_month) as usize)
        .scan(Decimal::ZERO, |total, s| {
            *total += s;
            Some(total.to_f64().unwrap_or(f64::MAX))
        })
        .collect();
    let budget = budget.map(|b| b.to_f64().unwrap_or(f64::MAX));
    let max_jobs = jobs.iter().copied().max().unwrap_or(0).max(1);
    let max_spend = cumulative.last().copied().unwrap_or(0.0).max(budget.unwrap_or(0.0)).max(0.01) * 1.15;

    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        // The x axis's labels are days of the month, whole numbers within 1..=31: exact.
        #[allow(clippy::cast_possible_truncation)]
        let day_label = |x: &f64| format!("{}", x.round() as i64);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 24))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .right_y_label_area_size(64)
            .build_cartesian_2d(0.5f64..(f64::from(days_in_month) + 0.5), 0u32..(max_jobs + max_jobs / 5 + 1))
            .map_err(failed)?
            .set_secondary_coord(0.5f64..(f64::from(days_in_month) + 0.5), 0f64..max_spend);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("day of the month (UTC)")
            .y_desc("jobs")
            .x_labels(days_in_month.min(16) as usize)
            .x_label_formatter(&day_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(failed)?;
        chart
            .configure_secondary_axes()
            .y_desc("spend this month (US$)")
            .y_label_formatter(&|y| format!("${y:.2}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(failed)?;

        let bar = RGBColor(90, 90, 90).filled();
        chart
            .draw_series((1u32..).zip(&jobs).filter(|(_, n)| **n > 0).map(|(day, n)| {
                let x = f64::from(day);
                Rectangle::new([(x - 0.35, 0), (x + 0.35, *n)], bar)
            }))
            .map_err(failed)?
            .label("jobs per day (bars)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], bar));

        let line = BLACK.stroke_width(2);
        let points: Vec<(f64, f64)> = (1u32..).zip(&cumulative).map(|(day, s)| (f64::from(day), *s)).collect();
        chart
            .draw_secondary_series(LineSeries::new(points.clone(), line))
            .map_err(failed)?
            .label("spend so far (line with dots)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], line));
        chart.draw_secondary_series(points.iter().map(|p| Circle::new(*p, 4, BLACK.filled()))).map_err(failed)?;

        if let Some(budget) = budget {
            let dashes: Vec<(f64, f64)> = (0..days_in_month * 2)
                .step_by(2)
                .map(|i| (0.5 + f64::from(i) / 2.0, 0.5 + f64::from(i + 1) / 2.0))
                .collect();
            let style = RGBColor(60, 60, 60).stroke_width(2);
            for (from, to) in dashes {
                chart
                    .draw_secondary_series(LineSeries::new([(from, budget), (to.min(from + 0.3), budget)], style))
                    .map_err(failed)?;
            }
            chart
                .draw_secondary_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(failed)?
                .label(format!("budget ${budget:.2} (dashed)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 6, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(failed)?;
        root.present().map_err(failed)?;
    }
    encode_png(&pixels)
}

fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(rgb).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_draws_as_a_png_of_readable_size() {
        let days =
            [Day { day: 1, jobs: 3, spend: Decimal::new(12, 2) }, Day { day: 5, jobs: 10, spend: Decimal::new(4, 1) }];
        let png = render("Image jobs · December 2026", &days, 31, 6, Some(Decimal::ONE)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(png.as_slice());
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (WIDTH, HEIGHT));
        assert!(png.len() < 512 * 1024, "small enough to upload: {} bytes", png.len());
    }

    #[test]
    fn text_is_drawn_with_the_embedded_font() {
        // The same chart with and without a title differs: the font renders glyphs.
        let plain = render("", &[], 30, 1, None).unwrap();
        let titled = render("Image jobs", &[], 30, 1, None).unwrap();
        assert_ne!(plain, titled);
    }
}
