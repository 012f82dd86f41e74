//! Pure: where a job that is not done yet stands, as its reply shows it — its place in the
//! server's line while it waits, when it was sent, and when it is likely ready, estimated from
//! how long jobs of its performance setting took on this database.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{
    db::jobs::{Job, JobStatus},
    render::{Estimate, Outlook, Stage},
};

/// Progress is shown in steps of this many percent, so a trickle of percent is not an edit each.
const PROGRESS_STEP: i32 = 5;

/// The stage a job in progress is shown at. `typical`: how long jobs like it take from
/// submission to finish, once enough were measured.
pub fn stage(job: &Job, typical: Option<Duration>, now: DateTime<Utc>) -> Stage {
    let sent_at = job.submitted_at.unwrap_or(job.created_at);
    let estimate = match typical.map(|t| sent_at + chrono::Duration::from_std(rounded(t)).unwrap_or_default()) {
        None => Estimate::Unknown,
        Some(at) if at > now => Estimate::LikelyReadyAt(at),
        Some(_) => Estimate::Overdue,
    };
    let place = job.place.filter(|_| JobStatus::WAITING.contains(&job.status));
    let outlook = Outlook { place, sent_at, estimate };
    match job.status {
        JobStatus::Queued if job.slot_limit.is_some() => Stage::WaitingForSlot { place },
        JobStatus::Running => Stage::Generating {
            outlook,
            progress: job.progress.and_then(|p| u8::try_from(p.clamp(0, 100) / PROGRESS_STEP * PROGRESS_STEP).ok()),
        },
        _ => Stage::Submitted { outlook },
    }
}

/// `typical` to a twentieth of itself (at least a second): the estimate moves only when the
/// measured durations really change, not with every new sample.
fn rounded(typical: Duration) -> Duration {
    let step = (typical.as_secs_f64() / 20.0).round().max(1.0);
    Duration::from_secs_f64((typical.as_secs_f64() / step).round() * step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_move_in_steps_of_a_twentieth() {
        assert_eq!(rounded(Duration::from_millis(6_400)), Duration::from_secs(6));
        assert_eq!(rounded(Duration::from_millis(61_400)), Duration::from_secs(60));
        assert_eq!(rounded(Duration::from_secs(208)), Duration::from_secs(210));
        assert_eq!(rounded(Duration::from_secs(204)), Duration::from_secs(200));
    }
}
