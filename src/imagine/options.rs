//! The fixed value sets of `/imagine`: aspect ratios and performance levels.

use std::fmt;

/// The aspect ratios the provider accepts, narrow to wide.
pub const ASPECT_RATIOS: [&str; 11] = ["9:16", "2:3", "3:4", "4:5", "5:6", "1:1", "6:5", "5:4", "4:3", "3:2", "16:9"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AspectRatio(&'static str);

impl AspectRatio {
    pub const SQUARE: AspectRatio = AspectRatio("1:1");

    /// One of the allowed ratios, spelled exactly.
    pub fn parse_exact(text: &str) -> Option<AspectRatio> {
        ASPECT_RATIOS.iter().find(|r| **r == text.trim()).map(|r| AspectRatio(r))
    }

    /// The allowed ratio nearest to `width:height`, compared on a log scale so that 2:1 and 1:2
    /// are equally far from 1:1.
    pub fn nearest(width: f64, height: f64) -> Option<AspectRatio> {
        if !(width.is_finite() && height.is_finite() && width > 0.0 && height > 0.0) {
            return None;
        }
        let target = (width / height).ln();
        ASPECT_RATIOS
            .iter()
            .map(|r| (r, (ratio_value(r).ln() - target).abs()))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(r, _)| AspectRatio(r))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

fn ratio_value(ratio: &str) -> f64 {
    let (w, h) = ratio.split_once(':').expect("allowed ratios are W:H");
    w.parse::<f64>().expect("number") / h.parse::<f64>().expect("number")
}

impl fmt::Display for AspectRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Performance levels belong to the provider's arguments; re-exported for the commands.
pub use crate::provider::Performance;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_ratios_parse() {
        for r in ASPECT_RATIOS {
            assert_eq!(AspectRatio::parse_exact(r).unwrap().as_str(), r);
        }
        assert_eq!(AspectRatio::parse_exact("7:3"), None);
    }

    #[test]
    fn ratios_snap_to_the_nearest_allowed() {
        assert_eq!(AspectRatio::nearest(7.0, 3.0).unwrap().as_str(), "16:9");
        assert_eq!(AspectRatio::nearest(1.0, 3.0).unwrap().as_str(), "9:16");
        assert_eq!(AspectRatio::nearest(21.0, 9.0).unwrap().as_str(), "16:9");
        assert_eq!(AspectRatio::nearest(1.0, 1.0).unwrap().as_str(), "1:1");
        assert_eq!(AspectRatio::nearest(3.0, 2.0).unwrap().as_str(), "3:2");
        assert_eq!(AspectRatio::nearest(1.05, 1.0).unwrap().as_str(), "1:1");
        assert_eq!(AspectRatio::nearest(0.0, 1.0), None);
    }
}
