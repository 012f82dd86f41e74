//! The database's clock, as seen from this process. Every time the worker stores or compares
//! with the database — `next_run_at`, deadlines against `submitted_at`, delivery deadlines,
//! leases — must be on one clock, and the database is the one every process shares: a host whose
//! clock runs fast or slow would otherwise park a job it wrote back (its `next_run_at` in the
//! database's future) or time jobs out early.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

/// An offset of the local clock from the database's, refreshed now and then.
#[derive(Debug, Clone, Default)]
pub struct DbClock {
    offset_micros: Arc<AtomicI64>,
}

/// An offset beyond this is worth an operator's attention: the host's clock is not synchronised.
const NOTABLE_SKEW: chrono::Duration = chrono::Duration::seconds(2);

impl DbClock {
    /// The database's time now.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::microseconds(self.offset_micros.load(Ordering::Relaxed))
    }

    /// Measures the offset again: the database's time against the middle of the round trip.
    pub async fn sync(&self, pool: &sqlx::PgPool) {
        let before = Utc::now();
        match crate::db::jobs::database_now(pool).await {
            Ok(database) => {
                let after = Utc::now();
                let offset = offset(before, database, after);
                let old = self.offset_micros.swap(offset.num_microseconds().unwrap_or(0), Ordering::Relaxed);
                if offset.abs() > NOTABLE_SKEW && (offset - chrono::Duration::microseconds(old)).abs() > NOTABLE_SKEW {
                    warn!(offset_ms = offset.num_milliseconds(), "this host's clock differs from the database's");
                }
            }
            Err(e) => debug!(error = %e, "could not read the database's clock; keeping the last offset"),
        }
    }
}

/// The database's time minus the local time at the middle of the round trip.
fn offset(before: DateTime<Utc>, database: DateTime<Utc>, after: DateTime<Utc>) -> chrono::Duration {
    let middle = before + (after - before) / 2;
    database - middle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_taken_at_the_middle_of_the_round_trip() {
        let before: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().unwrap();
        let after = before + chrono::Duration::milliseconds(20);
        let database = before + chrono::Duration::minutes(10) + chrono::Duration::milliseconds(10);
        assert_eq!(offset(before, database, after), chrono::Duration::minutes(10));
        assert_eq!(offset(before, before, after), chrono::Duration::milliseconds(-10));
    }
}
