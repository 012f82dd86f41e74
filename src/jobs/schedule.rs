//! When to look at a job again. Without history the schedule is fixed (first look after a few
//! seconds, then every `POLL_INTERVAL`, slower after `POLL_SLOW_AFTER`). With enough recent jobs
//! of the same performance setting, it learns where jobs finish: it waits quietly until the
//! window in which most jobs finish, polls densely inside it, and backs off after it. One
//! outlier does not stretch the window: its end follows the 95th percentile, not the maximum.

use std::{collections::HashMap, time::Duration};

use crate::config::PollSettings;

/// Recent jobs needed before the learned schedule is trusted.
const MIN_SAMPLES: usize = 8;
/// Longest quiet wait, so that progress edits keep showing a moving clock.
const MAX_QUIET: Duration = Duration::from_secs(15);
/// How far past the 95th percentile of recent durations the dense window reaches.
const LATE_MARGIN: f64 = 1.25;

/// Where jobs of one performance setting usually finish, measured from submission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub early: Duration,
    pub late: Duration,
}

/// Recent jobs of a performance setting needed before a likely-ready time is shown.
const MIN_ESTIMATE_SAMPLES: usize = 5;

/// Finish windows per performance setting, learned from recent successful jobs, and how long
/// such a job typically takes (the median), for the likely-ready time a waiting reply shows.
#[derive(Debug, Default, Clone)]
pub struct DurationModel {
    windows: HashMap<String, Window>,
    typical: HashMap<String, Duration>,
}

impl DurationModel {
    /// Builds the model from `(performance, seconds)` samples, newest first.
    pub fn from_samples(samples: &[(String, f64)]) -> Self {
        let mut by_performance: HashMap<&str, Vec<f64>> = HashMap::new();
        for (performance, seconds) in samples {
            if seconds.is_finite() && *seconds >= 0.0 {
                by_performance.entry(performance.as_str()).or_default().push(*seconds);
            }
        }
        for seconds in by_performance.values_mut() {
            seconds.sort_by(f64::total_cmp);
        }
        let typical = by_performance
            .iter()
            .filter(|(_, s)| s.len() >= MIN_ESTIMATE_SAMPLES)
            .map(|(performance, seconds)| ((*performance).to_owned(), Duration::from_secs_f64(median(seconds))))
            .collect();
        let windows = by_performance
            .into_iter()
            .filter(|(_, s)| s.len() >= MIN_SAMPLES)
            .map(|(performance, seconds)| {
                // The index of quantile `q` (0..=1) of a few hundred samples at most: exact, in range.
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let at = |q: f64| seconds[((seconds.len() - 1) as f64 * q).round() as usize];
                // From the fastest percent to a quarter past the 95th percentile (or the slowest
                // job, if sooner): a tighter window would leave the tails (a tenth of all jobs) to
                // the quiet and slow schedules, seconds late, while the slowest job alone would let
                // one outlier of the day make every job poll densely up to its duration. Jobs past
                // the window are still seen within one slow interval. The upper end costs nothing
                // for a typical job (it is done before), the lower one a query or two.
                let late = (at(0.95) * LATE_MARGIN).min(at(1.0));
                let window = Window { early: Duration::from_secs_f64(at(0.01)), late: Duration::from_secs_f64(late) };
                (performance.to_owned(), window)
            })
            .collect();
        DurationModel { windows, typical }
    }

    pub fn window(&self, performance: &str) -> Option<Window> {
        self.windows.get(performance).copied()
    }

    /// How long a job of this performance setting typically takes from submission to finish,
    /// once enough were measured.
    pub fn typical(&self, performance: &str) -> Option<Duration> {
        self.typical.get(performance).copied()
    }
}

/// The median of sorted, non-empty `seconds`.
fn median(seconds: &[f64]) -> f64 {
    let middle = seconds.len() / 2;
    if seconds.len() % 2 == 1 { seconds[middle] } else { (seconds[middle - 1] + seconds[middle]) / 2.0 }
}

/// The delay before the next query of a job that has run for `elapsed`.
pub fn next_poll(poll: &PollSettings, window: Option<Window>, elapsed: Duration) -> Duration {
    match window {
        None => {
            if elapsed < poll.slow_after {
                poll.interval
            } else {
                poll.slow_interval
            }
        }
        Some(Window { early, late }) => {
            if elapsed + poll.dense_interval < early {
                (early - elapsed).min(MAX_QUIET)
            } else if elapsed <= late {
                poll.dense_interval
            } else {
                poll.slow_interval
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll() -> PollSettings {
        PollSettings {
            first_delay: Duration::from_secs(5),
            interval: Duration::from_secs(3),
            dense_interval: Duration::from_secs(2),
            slow_interval: Duration::from_secs(10),
            slow_after: Duration::from_secs(60),
            deadline: Duration::from_secs(600),
            progress_edit_interval: Duration::from_secs(5),
        }
    }

    #[test]
    fn fixed_schedule_without_history() {
        assert_eq!(next_poll(&poll(), None, Duration::from_secs(10)), Duration::from_secs(3));
        assert_eq!(next_poll(&poll(), None, Duration::from_secs(61)), Duration::from_secs(10));
    }

    #[test]
    fn learned_schedule_is_quiet_then_dense_then_slow() {
        let samples: Vec<(String, f64)> = (0..20).map(|i| ("quality".to_owned(), 40.0 + f64::from(i))).collect();
        let model = DurationModel::from_samples(&samples);
        assert_eq!(model.window("balance"), None, "too few samples for balance");
        let window = model.window("quality").unwrap();
        assert_eq!(window.early, Duration::from_secs(40));
        assert_eq!(window.late, Duration::from_secs(59));
        let p = poll();
        assert_eq!(next_poll(&p, Some(window), Duration::from_secs(5)), Duration::from_secs(15), "quiet, capped");
        assert_eq!(next_poll(&p, Some(window), Duration::from_secs(35)), Duration::from_secs(5), "wake at the window");
        assert_eq!(next_poll(&p, Some(window), Duration::from_secs(45)), Duration::from_secs(2), "dense inside");
        assert_eq!(next_poll(&p, Some(window), Duration::from_secs(70)), Duration::from_secs(10), "slow after");
    }

    /// Queries of a job that finishes after `duration` seconds, and how late the last one sees it.
    fn queries_for(p: &PollSettings, window: Option<Window>, duration: f64) -> (u32, f64) {
        let mut t = p.first_delay;
        let mut queries = 1;
        while t.as_secs_f64() < duration {
            t += next_poll(p, window, t);
            queries += 1;
        }
        (queries, t.as_secs_f64() - duration)
    }

    #[test]
    fn a_typical_duration_needs_five_jobs_and_is_their_median() {
        let samples: Vec<(String, f64)> = [30.0, 10.0, 12.0, 11.0].iter().map(|s| ("speed".to_owned(), *s)).collect();
        assert_eq!(DurationModel::from_samples(&samples).typical("speed"), None, "four are too few");
        let mut samples = samples;
        samples.push(("speed".to_owned(), 13.0));
        samples.push(("quality".to_owned(), 90.0));
        let model = DurationModel::from_samples(&samples);
        assert_eq!(model.typical("speed"), Some(Duration::from_secs(12)), "the slow one does not pull it");
        assert_eq!(model.typical("quality"), None);
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), 2.5);
    }

    #[test]
    fn one_outlier_does_not_stretch_the_dense_window() {
        // A day of balance jobs finishing in 40-58 s, and one that took ten minutes.
        let mut samples: Vec<(String, f64)> =
            (0..49).map(|i| ("balance".to_owned(), 40.0 + f64::from(i % 19))).collect();
        samples.insert(7, ("balance".to_owned(), 600.0));
        let window = DurationModel::from_samples(&samples).window("balance").unwrap();
        assert_eq!(window.early, Duration::from_secs(40));
        assert!(window.late >= Duration::from_secs(58), "typical jobs stay inside: {window:?}");
        assert!(window.late <= Duration::from_secs(75), "the outlier does not stretch it: {window:?}");
        let p = poll();
        assert_eq!(next_poll(&p, Some(window), Duration::from_secs(120)), p.slow_interval, "slow past the window");
        // A slow job past the window is still seen within one slow interval, at a slow pace.
        let (queries, late) = queries_for(&p, Some(window), 600.0);
        assert!(late <= p.slow_interval.as_secs_f64(), "seen {late} s late");
        assert!(queries <= 80, "{queries} queries for a ten-minute job");
    }

    #[test]
    fn a_few_slow_jobs_still_widen_the_window() {
        // A tenth of the jobs take twice as long: they are part of the pattern, not outliers.
        let samples: Vec<(String, f64)> = (0..50)
            .map(|i| ("quality".to_owned(), if i % 10 == 0 { 100.0 + f64::from(i) / 10.0 } else { 50.0 }))
            .collect();
        let window = DurationModel::from_samples(&samples).window("quality").unwrap();
        assert!(window.late >= Duration::from_secs(104), "{window:?}");
    }

    #[test]
    fn queries_stay_within_budget_for_a_wide_spread() {
        // Jobs spread evenly over 20-90 s: the worst case for learning.
        let samples: Vec<(String, f64)> = (0..=70).map(|i| ("balance".to_owned(), 20.0 + f64::from(i))).collect();
        let window = DurationModel::from_samples(&samples).window("balance");
        let p = poll();
        for duration in [20.0, 35.0, 55.0, 90.0] {
            let (queries, late) = queries_for(&p, window, duration);
            let budget = duration / 2.5 + 2.0;
            assert!(f64::from(queries) <= budget, "{duration}s job: {queries} queries > {budget}");
            assert!(late <= 10.0, "{duration}s job seen {late:?} late");
        }
    }
}
