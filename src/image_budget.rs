//! A per-process budget for the bytes of images held in memory (`IMAGE_MEMORY_BUDGET`): result
//! images between their download and the upload that sends them on, by the worker and by `U<n>`
//! presses alike. Whoever is about to download reserves the bytes first (the known size, else
//! the cap it downloads with), and the [`Reservation`] gives them back when dropped; so however
//! many jobs and presses run at once, the images they hold stay within the budget.
//!
//! Counted in KiB (a semaphore's permits), rounded up per reservation. The budget counts the
//! images' own bytes, not the copies an HTTP client may make while sending them.
//!
//! A caller that must hold several images at once reserves them in one call: reserving one by
//! one while holding the earlier ones could leave two callers each waiting for the other's bytes.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

const KIB: u64 = 1024;

/// The budget of one process. Clones share it.
#[derive(Debug, Clone)]
pub struct ImageBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

/// Why bytes could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    /// Not now: other images hold the budget.
    #[error("the image memory budget is in use")]
    Busy,
    /// Never: more than the whole budget.
    #[error("more than the whole image memory budget")]
    LargerThanBudget,
}

impl ImageBudget {
    /// A budget of `bytes` (whole KiB; at most 4 TiB).
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from(bytes / KIB)
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        ImageBudget { permits: Arc::new(Semaphore::new(total_kib as usize)), total_kib }
    }

    pub fn total_bytes(&self) -> u64 {
        u64::from(self.total_kib) * KIB
    }

    /// The bytes not reserved right now.
    pub fn available_bytes(&self) -> u64 {
        self.permits.available_permits() as u64 * KIB
    }

    /// Reserves `bytes` at once, or says why not: for work that is refused rather than queued.
    pub fn try_reserve(&self, bytes: u64) -> Result<Reservation, OverBudget> {
        let kib = self.kib_within_total(bytes)?;
        match self.permits.clone().try_acquire_many_owned(kib) {
            Ok(permit) => Ok(Reservation { permit }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(OverBudget::Busy),
        }
    }

    /// Reserves `bytes`, waiting (first come, first served) until other images give them back.
    /// Fails at once, and only, when `bytes` is more than the whole budget.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, OverBudget> {
        let kib = self.kib_within_total(bytes)?;
        // The semaphore is never closed.
        let permit = self.permits.clone().acquire_many_owned(kib).await.map_err(|_| OverBudget::Busy)?;
        Ok(Reservation { permit })
    }

    /// Reserves `bytes`, or the whole budget when `bytes` is more, waiting as [`Self::reserve`]
    /// does: for work that must run however large, alone when it needs more than there is.
    pub async fn reserve_up_to(&self, bytes: u64) -> Reservation {
        self.reserve(bytes.min(self.total_bytes())).await.expect("never more than the whole budget")
    }

    fn kib_within_total(&self, bytes: u64) -> Result<u32, OverBudget> {
        u32::try_from(bytes.div_ceil(KIB)).ok().filter(|kib| *kib <= self.total_kib).ok_or(OverBudget::LargerThanBudget)
    }
}

/// Bytes reserved in an [`ImageBudget`], given back when this is dropped. Keep it for as long as
/// the bytes it stands for are held: until the upload that sends them has finished.
#[derive(Debug)]
pub struct Reservation {
    permit: OwnedSemaphorePermit,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.permit.num_permits() as u64 * KIB
    }

    /// Gives back what is reserved beyond `bytes` (a download that came out smaller than the cap
    /// it was reserved for); a larger `bytes` changes nothing.
    pub fn shrink_to(&mut self, bytes: u64) {
        let keep = usize::try_from(bytes.div_ceil(KIB)).unwrap_or(usize::MAX);
        if let Some(extra) = self.permit.num_permits().checked_sub(keep).filter(|n| *n > 0) {
            drop(self.permit.split(extra));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * KIB;

    #[test]
    fn reservations_stay_within_the_budget_and_are_given_back_when_dropped() {
        let budget = ImageBudget::new(3 * MIB);
        assert_eq!(budget.total_bytes(), 3 * MIB);
        let first = budget.try_reserve(2 * MIB).unwrap();
        assert_eq!(first.bytes(), 2 * MIB);
        assert_eq!(budget.try_reserve(2 * MIB).unwrap_err(), OverBudget::Busy);
        let second = budget.try_reserve(MIB).unwrap();
        assert_eq!(budget.available_bytes(), 0);
        assert_eq!(budget.try_reserve(1).unwrap_err(), OverBudget::Busy);
        drop(first);
        assert_eq!(budget.available_bytes(), 2 * MIB);
        drop(second);
        assert_eq!(budget.available_bytes(), 3 * MIB, "everything given back");
    }

    #[test]
    fn bytes_are_counted_in_whole_kib_rounded_up() {
        let budget = ImageBudget::new(10 * KIB + 500);
        assert_eq!(budget.total_bytes(), 10 * KIB, "the budget rounds down");
        assert_eq!(budget.try_reserve(1).unwrap().bytes(), KIB);
        assert_eq!(budget.try_reserve(KIB + 1).unwrap().bytes(), 2 * KIB);
        assert_eq!(budget.try_reserve(0).unwrap().bytes(), 0);
        assert_eq!(budget.try_reserve(10 * KIB).unwrap().bytes(), 10 * KIB);
    }

    #[test]
    fn more_than_the_whole_budget_never_fits() {
        let budget = ImageBudget::new(MIB);
        assert_eq!(budget.try_reserve(MIB + 1).unwrap_err(), OverBudget::LargerThanBudget);
        assert_eq!(budget.try_reserve(u64::MAX).unwrap_err(), OverBudget::LargerThanBudget);
        let held = budget.try_reserve(MIB).unwrap();
        assert_eq!(budget.try_reserve(MIB + 1).unwrap_err(), OverBudget::LargerThanBudget, "even while busy");
        drop(held);
    }

    #[test]
    fn a_reservation_shrinks_to_what_was_downloaded() {
        let budget = ImageBudget::new(8 * MIB);
        let mut reservation = budget.try_reserve(8 * MIB).unwrap();
        reservation.shrink_to(3 * MIB + 1);
        assert_eq!(reservation.bytes(), 3 * MIB + KIB);
        assert_eq!(budget.available_bytes(), 5 * MIB - KIB);
        reservation.shrink_to(6 * MIB);
        assert_eq!(reservation.bytes(), 3 * MIB + KIB, "never grows");
        drop(reservation);
        assert_eq!(budget.available_bytes(), 8 * MIB);
    }

    #[tokio::test]
    async fn reserve_waits_until_bytes_are_given_back() {
        let budget = ImageBudget::new(2 * MIB);
        let held = budget.reserve(2 * MIB).await.unwrap();
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(MIB).await.map(|r| r.bytes()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no room yet");
        drop(held);
        assert_eq!(waiting.await.unwrap(), Ok(MIB));
        assert_eq!(budget.reserve(3 * MIB).await.unwrap_err(), OverBudget::LargerThanBudget);
    }

    #[tokio::test]
    async fn reserve_up_to_takes_the_whole_budget_for_more_than_it() {
        let budget = ImageBudget::new(2 * MIB);
        let whole = budget.reserve_up_to(3 * MIB).await;
        assert_eq!((whole.bytes(), budget.available_bytes()), (2 * MIB, 0));
        drop(whole);
        assert_eq!(budget.reserve_up_to(MIB).await.bytes(), MIB);
    }
}
