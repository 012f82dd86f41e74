//! Per-guild quotas: what the limits are and how a refusal reads.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

/// A guild's limits; `None` is unlimited and `Some(0)` allows no jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub daily: Option<i32>,
    pub monthly: Option<i32>,
    pub per_user_daily: Option<i32>,
    pub max_concurrent: Option<i32>,
}

/// What the bot's operator allows, across every guild (environment settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorLimits {
    /// `DAILY_SPEND_LIMIT`: US dollars per UTC day across every guild.
    pub daily_spend_limit: Option<Decimal>,
    /// `EXPECTED_JOB_COST`: the price assumed for a job the provider has not priced yet, when no
    /// job was ever priced (otherwise the last recorded amount is assumed).
    pub expected_job_cost: Decimal,
    /// `MAX_GUILD_*`: the most a guild admin may set each limit to (`None` = no ceiling).
    pub ceilings: Limits,
}

impl Default for OperatorLimits {
    fn default() -> Self {
        OperatorLimits {
            daily_spend_limit: None,
            expected_job_cost: DEFAULT_EXPECTED_JOB_COST,
            ceilings: Limits::default(),
        }
    }
}

/// What one job is assumed to cost before any job was priced, in US dollars.
pub const DEFAULT_EXPECTED_JOB_COST: Decimal = Decimal::from_parts(4, 0, 0, false, 2);

/// Everything a reservation checks: the guild defaults and the operator's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Limits of a guild the bot has never seen.
    pub defaults: Limits,
    pub operator: OperatorLimits,
}

impl From<Limits> for Policy {
    fn from(defaults: Limits) -> Self {
        Policy { defaults, operator: OperatorLimits::default() }
    }
}

/// Jobs counted in each window at the moment of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub day: i64,
    pub month: i64,
    pub user_day: i64,
    /// The member's jobs in flight, not counting those waiting for a slot (`max_queued`).
    pub user_in_flight: i64,
    /// The member's jobs accepted past `max_concurrent`, waiting for a slot.
    pub user_waiting: i64,
}

/// One of a guild's limits; stored by name in the audit of quota changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "limit_kind", rename_all = "snake_case")]
pub enum LimitKind {
    Monthly,
    Daily,
    PerUserDaily,
    MaxConcurrent,
}

impl LimitKind {
    /// In the order of `/quota set`'s options.
    pub const ALL: [LimitKind; 4] =
        [LimitKind::Daily, LimitKind::Monthly, LimitKind::PerUserDaily, LimitKind::MaxConcurrent];

    /// The setting that caps this limit for every guild.
    pub fn ceiling_setting(self) -> &'static str {
        match self {
            LimitKind::Daily => "MAX_GUILD_DAILY_LIMIT",
            LimitKind::Monthly => "MAX_GUILD_MONTHLY_LIMIT",
            LimitKind::PerUserDaily => "MAX_GUILD_PER_USER_DAILY_LIMIT",
            LimitKind::MaxConcurrent => "MAX_GUILD_MAX_CONCURRENT",
        }
    }

    pub fn parse(text: &str) -> Option<LimitKind> {
        Self::ALL.into_iter().find(|k| k.name() == text)
    }

    /// The limit's option name in `/quota set`.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Monthly => "monthly",
            LimitKind::Daily => "daily",
            LimitKind::PerUserDaily => "per_user_daily",
            LimitKind::MaxConcurrent => "max_concurrent",
        }
    }
}

/// Why a job was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub kind: LimitKind,
    pub limit: i32,
    /// When the window resets; `None` for the in-flight limit, which frees up as jobs finish.
    pub resets_at: Option<DateTime<Utc>>,
}

impl Limits {
    /// The slot of one limit, for changing it.
    pub fn slot(&mut self, kind: LimitKind) -> &mut Option<i32> {
        match kind {
            LimitKind::Daily => &mut self.daily,
            LimitKind::Monthly => &mut self.monthly,
            LimitKind::PerUserDaily => &mut self.per_user_daily,
            LimitKind::MaxConcurrent => &mut self.max_concurrent,
        }
    }

    pub fn get(&self, kind: LimitKind) -> Option<i32> {
        match kind {
            LimitKind::Daily => self.daily,
            LimitKind::Monthly => self.monthly,
            LimitKind::PerUserDaily => self.per_user_daily,
            LimitKind::MaxConcurrent => self.max_concurrent,
        }
    }

    /// The first of `changes` that goes above a ceiling, as the refusal to show.
    pub fn ceiling_refusal(&self, kind: LimitKind, value: Option<i32>) -> Option<(i32, &'static str)> {
        let ceiling = self.get(kind)?;
        (value.is_none_or(|v| v > ceiling)).then_some((ceiling, kind.ceiling_setting()))
    }

    /// These limits, none above the operator's ceilings.
    pub fn within(mut self, ceilings: &Limits) -> Limits {
        for kind in LimitKind::ALL {
            let ceiling = ceilings.get(kind);
            let slot = self.slot(kind);
            *slot = match (*slot, ceiling) {
                (limit, None) => limit,
                (None, Some(ceiling)) => Some(ceiling),
                (Some(limit), Some(ceiling)) => Some(limit.min(ceiling)),
            };
        }
        self
    }

    /// The first limit that `usage` has reached, checking the longest window first.
    pub fn check(&self, usage: &Usage, now: DateTime<Utc>) -> Option<Refusal> {
        let checks = [
            (LimitKind::Monthly, self.monthly, usage.month, Some(next_month(now))),
            (LimitKind::Daily, self.daily, usage.day, Some(next_day(now))),
            (LimitKind::PerUserDaily, self.per_user_daily, usage.user_day, Some(next_day(now))),
            (LimitKind::MaxConcurrent, self.max_concurrent, usage.user_in_flight, None),
        ];
        checks.into_iter().find_map(|(kind, limit, used, resets_at)| {
            let limit = limit?;
            (used >= i64::from(limit)).then_some(Refusal { kind, limit, resets_at })
        })
    }
}

impl Refusal {
    /// The sentence shown to the user.
    pub fn message(&self) -> String {
        let when = self.resets_at.map(|t| format!("<t:{}:R>", t.timestamp())).unwrap_or_default();
        let jobs = |n: i32| if n == 1 { "1 image job".to_owned() } else { format!("{n} image jobs") };
        match (self.kind, self.limit) {
            (LimitKind::MaxConcurrent, 0) | (_, 0) => {
                "This server's admins have not allowed image jobs here right now. Ask them to raise the limit with `/quota set`.".into()
            }
            (LimitKind::Monthly, n) => format!("This server has used its monthly quota of {}. It resets {when}.", jobs(n)),
            (LimitKind::Daily, n) => format!("This server has used its daily quota of {}. It resets {when}.", jobs(n)),
            (LimitKind::PerUserDaily, n) => format!("You have used your daily quota of {} on this server. It resets {when}.", jobs(n)),
            (LimitKind::MaxConcurrent, n) => format!(
                "You already have {} in progress, the most this server allows at once. Try again when one finishes.",
                jobs(n)
            ),
        }
    }
}

pub fn day_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&now.date_naive().and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// When a member's daily count starts: the UTC day's start, or an admin's later reset of it
/// (`/quota member reset:True`).
pub fn member_day_start(now: DateTime<Utc>, reset_at: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let day = day_start(now);
    reset_at.map_or(day, |reset| reset.max(day))
}

pub fn next_day(now: DateTime<Utc>) -> DateTime<Utc> {
    day_start(now) + Duration::days(1)
}

pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().expect("first of month exists")
}

pub fn next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 { (now.year() + 1, 1) } else { (now.year(), now.month() + 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().expect("first of month exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn windows_are_utc_calendar_windows() {
        let now = at("2026-12-31T23:59:59Z");
        assert_eq!(day_start(now), at("2026-12-31T00:00:00Z"));
        assert_eq!(next_day(now), at("2027-01-01T00:00:00Z"));
        assert_eq!(month_start(now), at("2026-12-01T00:00:00Z"));
        assert_eq!(next_month(now), at("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn a_reset_today_moves_the_start_of_a_members_day() {
        let now = at("2026-11-25T12:00:00Z");
        assert_eq!(member_day_start(now, None), at("2026-11-25T00:00:00Z"));
        assert_eq!(member_day_start(now, Some(at("2026-11-24T23:00:00Z"))), at("2026-11-25T00:00:00Z"), "yesterday's");
        assert_eq!(member_day_start(now, Some(at("2026-11-25T09:30:00Z"))), at("2026-11-25T09:30:00Z"));
    }

    #[test]
    fn the_longest_window_is_reported_first() {
        let limits = Limits { daily: Some(5), monthly: Some(10), per_user_daily: Some(2), max_concurrent: Some(1) };
        let now = at("2026-11-25T12:00:00Z");
        let usage = Usage { day: 5, month: 10, user_day: 2, user_in_flight: 1, user_waiting: 0 };
        assert_eq!(limits.check(&usage, now).unwrap().kind, LimitKind::Monthly);
        let usage = Usage { day: 1, month: 1, user_day: 0, user_in_flight: 1, user_waiting: 0 };
        let refusal = limits.check(&usage, now).unwrap();
        assert_eq!(refusal.kind, LimitKind::MaxConcurrent);
        assert!(refusal.message().contains("in progress"));
        assert_eq!(limits.check(&Usage::default(), now), None);
        assert_eq!(
            Limits::default()
                .check(&Usage { day: 9999, month: 9999, user_day: 9999, user_in_flight: 9999, user_waiting: 0 }, now),
            None
        );
    }

    #[test]
    fn ceilings_cap_every_limit() {
        let ceilings = Limits { daily: Some(50), monthly: None, per_user_daily: Some(5), max_concurrent: Some(2) };
        let guild = Limits { daily: None, monthly: Some(900), per_user_daily: Some(10), max_concurrent: Some(1) };
        assert_eq!(
            guild.within(&ceilings),
            Limits { daily: Some(50), monthly: Some(900), per_user_daily: Some(5), max_concurrent: Some(1) }
        );
        assert_eq!(guild.within(&Limits::default()), guild);
    }

    #[test]
    fn refusal_names_the_limit_and_reset() {
        let now = at("2026-11-25T12:00:00Z");
        let r = Limits { daily: Some(3), ..Default::default() }
            .check(&Usage { day: 3, ..Default::default() }, now)
            .unwrap();
        let msg = r.message();
        assert!(msg.contains("daily quota of 3 image jobs"), "{msg}");
        assert!(msg.contains(&format!("<t:{}:R>", at("2026-11-26T00:00:00Z").timestamp())), "{msg}");
        let zero = Limits { monthly: Some(0), ..Default::default() }.check(&Usage::default(), now).unwrap();
        assert!(zero.message().contains("not allowed"));
    }
}
