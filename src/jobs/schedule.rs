//! When to look at a job again. Without history the schedule is fixed (first look after a few
//! seconds, then every `POLL_INTERVAL`, slower after `POLL_SLOW_AFTER`). With enough recent jobs
//! of the same performance setting, it learns where jobs finish: it waits quietly until the
//! window in which most jobs finish, polls densely inside it, and backs off after it. One
//! outlier does not stretch the window: its end follows the 95th percentile, not the maximum.
//!
//! The jobs still running count too, as durations known only to be at least what they have run
//! so far (a Kaplan-Meier estimate): in a burst, the first jobs to finish are its short ones, and
//! finishes alone would end the window before the burst's long jobs finish. While too many jobs
//! have run past every finish seen, where the window ends is not known, and it stays open.

use std::{collections::HashMap, time::Duration};

use crate::{config::PollSettings, db::jobs::DurationSample};

/// Recent finished jobs needed before the learned schedule is trusted.
const MIN_SAMPLES: usize = 8;
/// Longest quiet wait, so that progress edits keep showing a moving clock.
const MAX_QUIET: Duration = Duration::from_secs(15);
/// How far past the 95th percentile of recent durations the dense window reaches.
const LATE_MARGIN: f64 = 1.25;

/// Where jobs of one performance setting usually finish, measured from submission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub early: Duration,
    /// `Duration::MAX` while it is not known where the window ends (see the module's notes).
    pub late: Duration,
}

/// Recent finished jobs of a performance setting needed before a likely-ready time is shown.
const MIN_ESTIMATE_SAMPLES: usize = 5;

/// Finish windows per performance setting, learned from recent successful jobs, and how long
/// such a job typically takes (the median), for the likely-ready time a waiting reply shows.
#[derive(Debug, Default, Clone)]
pub struct DurationModel {
    windows: HashMap<String, Window>,
    typical: HashMap<String, Duration>,
}

impl DurationModel {
    /// Builds the model from recent jobs: finished ones, and ones still running.
    pub fn from_samples(samples: &[DurationSample]) -> Self {
        let mut by_performance: HashMap<&str, Vec<(f64, bool)>> = HashMap::new();
        for sample in samples {
            if sample.seconds.is_finite() && sample.seconds >= 0.0 {
                by_performance.entry(sample.performance.as_str()).or_default().push((sample.seconds, sample.finished));
            }
        }
        let mut windows = HashMap::new();
        let mut typical = HashMap::new();
        for (performance, samples) in by_performance {
            let finishes = Finishes::new(samples);
            if finishes.finished.len() >= MIN_ESTIMATE_SAMPLES
                && let Some(median) = finishes.median()
            {
                typical.insert(performance.to_owned(), Duration::from_secs_f64(median));
            }
            if finishes.finished.len() >= MIN_SAMPLES
                && let Some(early) = finishes.at(0.01)
            {
                // From the fastest percent to a quarter past the 95th percentile (or the slowest
                // job, if sooner): a tighter window would leave the tails (a tenth of all jobs) to
                // the quiet and slow schedules, seconds late, while the slowest job alone would let
                // one outlier of the day make every job poll densely up to its duration. Jobs past
                // the window are still seen within one slow interval. The upper end costs nothing
                // for a typical job (it is done before), the lower one a query or two.
                let late = match (finishes.at(0.95), finishes.at(1.0)) {
                    (Some(p95), Some(slowest)) => Duration::from_secs_f64((p95 * LATE_MARGIN).min(slowest)),
                    (Some(p95), None) => Duration::from_secs_f64(p95 * LATE_MARGIN),
                    (None, _) => Duration::MAX,
                };
                windows.insert(performance.to_owned(), Window { early: Duration::from_secs_f64(early), late });
            }
        }
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

/// How long one performance setting's jobs take, as far as recent jobs tell: the share of jobs
/// finished by each finish time seen (Kaplan-Meier), the running ones counted as at risk up to
/// what they have run.
struct Finishes {
    /// Finish times, sorted.
    finished: Vec<f64>,
    /// `(seconds, share of jobs finished by then)` at each distinct finish time, rising.
    steps: Vec<(f64, f64)>,
    /// Whether a running job has run longer than the quickest finish: only then do the running
    /// jobs change anything.
    censored: bool,
    /// The jobs that had not finished by the quickest finish: what the shares are shares of.
    at_risk: usize,
}

impl Finishes {
    fn new(mut samples: Vec<(f64, bool)>) -> Self {
        // Ties: a finish at the moment a running job was seen counts that job as still at risk.
        samples.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        let finished: Vec<f64> = samples.iter().filter(|s| s.1).map(|s| s.0).collect();
        let censored = finished.first().is_some_and(|first| samples.iter().any(|s| !s.1 && s.0 > *first));
        let at_risk = finished.first().map_or(0, |first| samples.iter().filter(|s| s.0 >= *first).count());
        let mut steps: Vec<(f64, f64)> = Vec::new();
        let mut surviving = 1.0;
        let mut i = 0;
        while i < samples.len() {
            let t = samples[i].0;
            let running_then = samples.len() - i;
            let ended = samples[i..].iter().take_while(|s| s.0 == t && s.1).count();
            if ended > 0 {
                #[allow(clippy::cast_precision_loss, reason = "a few thousand samples at most")]
                let share = ended as f64 / running_then as f64;
                surviving *= 1.0 - share;
                steps.push((t, 1.0 - surviving));
            }
            i += samples[i..].iter().take_while(|s| s.0 == t).count();
        }
        Finishes { finished, steps, censored, at_risk }
    }

    /// The duration by which the share `q` (0..=1) of jobs finished, or `None` when recent jobs
    /// do not tell yet. With every job finished, this is the finish at index `(n - 1) * q`
    /// (rounded) of the `n` sorted finishes.
    fn at(&self, q: f64) -> Option<f64> {
        let n = self.at_risk;
        if n == 0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss, reason = "a few thousand samples at most")]
        let level = (((n - 1) as f64 * q).round() + 1.0) / n as f64;
        // A hair below the level: shares are sums of fractions, not exact.
        self.steps.iter().find(|(_, share)| *share >= level - 1e-9).map(|(t, _)| *t)
    }

    /// The median duration: of the finishes when the running jobs change nothing, else where
    /// half the jobs have finished.
    fn median(&self) -> Option<f64> {
        if self.censored { self.at(0.5) } else { (!self.finished.is_empty()).then(|| median(&self.finished)) }
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

    fn done(performance: &str, seconds: f64) -> DurationSample {
        DurationSample { performance: performance.to_owned(), seconds, finished: true }
    }

    fn running(performance: &str, seconds: f64) -> DurationSample {
        DurationSample { performance: performance.to_owned(), seconds, finished: false }
    }

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
        let samples: Vec<DurationSample> = (0..20).map(|i| done("quality", 40.0 + f64::from(i))).collect();
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
        let samples: Vec<DurationSample> = [30.0, 10.0, 12.0, 11.0].iter().map(|s| done("speed", *s)).collect();
        assert_eq!(DurationModel::from_samples(&samples).typical("speed"), None, "four are too few");
        let mut samples = samples;
        samples.push(done("speed", 13.0));
        samples.push(done("quality", 90.0));
        let model = DurationModel::from_samples(&samples);
        assert_eq!(model.typical("speed"), Some(Duration::from_secs(12)), "the slow one does not pull it");
        assert_eq!(model.typical("quality"), None);
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), 2.5);
    }

    #[test]
    fn one_outlier_does_not_stretch_the_dense_window() {
        // A day of balance jobs finishing in 40-58 s, and one that took ten minutes.
        let mut samples: Vec<DurationSample> = (0..49).map(|i| done("balance", 40.0 + f64::from(i % 19))).collect();
        samples.insert(7, done("balance", 600.0));
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
        let samples: Vec<DurationSample> =
            (0..50).map(|i| done("quality", if i % 10 == 0 { 100.0 + f64::from(i) / 10.0 } else { 50.0 })).collect();
        let window = DurationModel::from_samples(&samples).window("quality").unwrap();
        assert!(window.late >= Duration::from_secs(104), "{window:?}");
    }

    #[test]
    fn jobs_still_running_short_of_every_finish_change_nothing() {
        let finished: Vec<DurationSample> = (0..20).map(|i| done("quality", 40.0 + f64::from(i))).collect();
        let mut with_young = finished.clone();
        with_young.extend((0..30).map(|i| running("quality", f64::from(i))));
        let (plain, young) = (DurationModel::from_samples(&finished), DurationModel::from_samples(&with_young));
        assert_eq!(young.window("quality"), plain.window("quality"));
        assert_eq!(young.typical("quality"), plain.typical("quality"));
        assert_eq!(DurationModel::from_samples(&[running("quality", 50.0)]).window("quality"), None);
    }

    #[test]
    fn in_a_burst_the_jobs_still_running_keep_the_window_open() {
        // A minute into a burst of jobs that take 20-90 s: the 100 that finished are its short
        // ones; 100 more have run 50-60 s and are still running.
        let mut samples: Vec<DurationSample> = (0..100).map(|i| done("balance", 20.0 + f64::from(i) * 0.4)).collect();
        samples.extend((0..100).map(|i| running("balance", 50.0 + f64::from(i) * 0.1)));
        let model = DurationModel::from_samples(&samples);
        let window = model.window("balance").unwrap();
        assert!(window.early <= Duration::from_secs(21), "{window:?}");
        assert_eq!(window.late, Duration::MAX, "where the burst's jobs finish is not known yet");
        let p = poll();
        assert_eq!(next_poll(&p, Some(window), Duration::from_secs(75)), p.dense_interval, "dense past every finish");
        // Half the burst has not finished by a minute: the likely duration is not the finishes'
        // median (40 s).
        assert!(
            model.typical("balance").is_none_or(|t| t >= Duration::from_secs(50)),
            "{:?}",
            model.typical("balance")
        );
    }

    #[test]
    fn running_jobs_weigh_in_where_they_have_run() {
        // Finishes spread over 20-59 s, and a quarter of the jobs still running at 45 s: the
        // window is estimated as if those finish later than 45 s, so it reaches further than the
        // finishes alone.
        let mut samples: Vec<DurationSample> = (0..40).map(|i| done("balance", 20.0 + f64::from(i))).collect();
        let finishes_only = DurationModel::from_samples(&samples).window("balance").unwrap();
        samples.extend((0..10).map(|_| running("balance", 45.0)));
        let window = DurationModel::from_samples(&samples).window("balance").unwrap();
        assert_eq!(window.early, finishes_only.early);
        assert!(window.late >= finishes_only.late, "{window:?} against {finishes_only:?}");
    }

    #[test]
    fn queries_stay_within_budget_for_a_wide_spread() {
        // Jobs spread evenly over 20-90 s: the worst case for learning.
        let samples: Vec<DurationSample> = (0..=70).map(|i| done("balance", 20.0 + f64::from(i))).collect();
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
