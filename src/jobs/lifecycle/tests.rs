//! The lifecycle, table by table: every state, every provider outcome, every Discord outcome.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::*;
use crate::{
    db::DiscordId,
    spec::{AspectRatio, JobSpec, Pictures},
    words::DETAILS_IN_LOGS,
};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    at("2026-12-01T12:00:00Z")
}

const TIMING: Timing = Timing {
    deadline: Duration::from_secs(600),
    query_retry: Duration::from_secs(2),
    delivery_deadline: Duration::from_secs(3600),
    jitter: 1.0,
};

fn job(status: JobStatus) -> Job {
    let created = now() - chrono::Duration::seconds(30);
    let at_provider = !matches!(status, JobStatus::Queued | JobStatus::Submitting);
    Job {
        id: Uuid::nil(),
        interaction_id: DiscordId::new(1),
        application_id: DiscordId::new(2),
        guild_id: DiscordId::new(3),
        channel_id: DiscordId::new(4),
        user_id: DiscordId::new(5),
        interaction_token: Some("token".into()),
        token_expires_at: created + chrono::Duration::minutes(15),
        attachment_size_limit: 10 << 20,
        spec: Json(JobSpec {
            prompt: "a cat".into(),
            negative_prompt: None,
            aspect_ratio: AspectRatio::SQUARE,
            performance: None,
            stylization: None,
            chaos: None,
            weirdness: None,
            style_weight: None,
            omni_weight: None,
            pictures: Pictures { images: vec!["https://cdn/a.png".into()], ..Pictures::default() },
            sources: Default::default(),
        }),
        notes: vec![],
        status,
        counted: true,
        provider_job_id: at_provider.then(|| "p-1".into()),
        provider_status: None,
        progress: None,
        unknown_polls: 0,
        amount: at_provider.then(|| rust_decimal::Decimal::new(4, 2)),
        result_urls: vec![],
        error_text: None,
        message_id: None,
        delivery: None,
        create_attempts: 0,
        poll_failures: 0,
        delivery_attempts: 0,
        images_kept: false,
        reply_failed: false,
        next_run_at: now(),
        acked_at: Some(created),
        last_edit_at: None,
        last_edit_text: None,
        created_at: created,
        submitted_at: at_provider.then_some(created),
        running_at: None,
        finished_at: None,
        delivered_at: None,
        lease_token: Uuid::nil(),
        slot_limit: None,
        place: None,
    }
}

fn transient(may_have_landed: bool) -> ProviderError {
    ProviderError::Transient { reason: "HTTP 503".into(), retry_after: None, may_have_landed }
}

fn rejected(message: &str) -> ProviderError {
    ProviderError::Rejected { message: message.into(), code: Some(1), http_status: Some(200) }
}

fn state(phase: Phase) -> JobState {
    JobState { phase, raw_status: "x".into(), progress: None }
}

/// A job that was refunded: failed-like state, not counted, finished now, with a reason.
fn assert_refunded(job: &Job, status: JobStatus, reason_contains: &str) {
    assert_eq!(job.status, status);
    assert!(!job.counted, "{status:?} must be refunded");
    assert_eq!(job.finished_at, Some(now()));
    let reason = job.error_text.as_deref().unwrap_or_default();
    assert!(reason.contains(reason_contains), "{reason:?} lacks {reason_contains:?}");
    assert_eq!(job.next_run_at, now(), "a finished job is delivered at once");
}

#[test]
fn on_due_decides_for_every_state() {
    let cases: [(JobStatus, Action, JobStatus); 9] = [
        (JobStatus::Queued, Action::Create, JobStatus::Submitting),
        (JobStatus::Submitting, Action::Deliver, JobStatus::Uncertain),
        (JobStatus::Submitted, Action::Query, JobStatus::Submitted),
        (JobStatus::Running, Action::Query, JobStatus::Running),
        (JobStatus::Succeeded, Action::Deliver, JobStatus::Succeeded),
        (JobStatus::Failed, Action::Deliver, JobStatus::Failed),
        (JobStatus::TimedOut, Action::Deliver, JobStatus::TimedOut),
        (JobStatus::Uncertain, Action::Deliver, JobStatus::Uncertain),
        (JobStatus::Cancelled, Action::Wait, JobStatus::Cancelled),
    ];
    assert_eq!(cases.map(|(from, _, _)| from), JobStatus::ALL, "every state");
    for (from, action, to) in cases {
        let mut j = job(from);
        assert_eq!(on_due(&mut j, now()), action, "{from:?}");
        assert_eq!(j.status, to, "{from:?}");
    }
}

#[test]
fn a_create_cut_off_by_a_crash_becomes_uncertain_and_refunded() {
    let mut j = job(JobStatus::Submitting);
    on_due(&mut j, now());
    assert_refunded(&j, JobStatus::Uncertain, "could not confirm");
}

#[test]
fn a_job_the_provider_accepted_is_followed_after_a_crash() {
    // The create answered with an id, but the process died before `submitted` was written.
    let mut j = job(JobStatus::Submitting);
    j.provider_job_id = Some("p-7".into());
    j.amount = Some(rust_decimal::Decimal::new(4, 2));
    assert_eq!(on_due(&mut j, now()), Action::Query);
    assert_eq!((j.status, j.counted, j.submitted_at), (JobStatus::Submitted, true, Some(now())));
    assert_eq!(j.error_text, None);
}

#[test]
fn a_job_whose_reply_never_reached_the_user_costs_nothing() {
    let mut j = job(JobStatus::Queued);
    j.reply_failed = true;
    assert_eq!(on_due(&mut j, now()), Action::Wait);
    assert_refunded(&j, JobStatus::Failed, "could not be sent");
    assert_eq!(
        (j.delivery, j.delivered_at, j.interaction_token.as_deref()),
        (Some(Delivery::Undelivered), Some(now()), None)
    );

    let mut j = job(JobStatus::Queued);
    j.acked_at = None;
    assert_eq!(on_due(&mut j, now()), Action::Wait);
    assert_refunded(&j, JobStatus::Failed, "restarted");
    assert_eq!(j.delivery, Some(Delivery::Undelivered));
}

#[test]
fn a_job_past_its_deadline_is_queried_once_more_then_times_out_refunded() {
    for status in [JobStatus::Submitted, JobStatus::Running] {
        let mut j = job(status);
        j.submitted_at = Some(now() - chrono::Duration::seconds(600));
        assert_eq!(on_due(&mut j, now()), Action::Query, "one last look first");
        assert_eq!(j.status, status);
        on_query(&mut j, Ok(state(Phase::Running)), now(), Duration::from_secs(2), &TIMING);
        assert_refunded(&j, JobStatus::TimedOut, "did not finish within 10 min 00 s.");

        let mut j = job(status);
        j.submitted_at = Some(now() - chrono::Duration::seconds(600));
        on_query(&mut j, Err(transient(false)), now(), Duration::from_secs(2), &TIMING);
        assert_refunded(&j, JobStatus::TimedOut, "did not finish");
    }
    // The last look finds it done: delivered, paid for.
    let mut j = job(JobStatus::Running);
    j.submitted_at = Some(now() - chrono::Duration::seconds(900));
    assert_eq!(on_due(&mut j, now()), Action::Query);
    on_query(&mut j, Ok(state(Phase::Succeeded(vec!["https://x/1.png".into()]))), now(), Duration::ZERO, &TIMING);
    assert_eq!((j.status, j.counted), (JobStatus::Succeeded, true));
}

#[test]
fn delivered_jobs_do_nothing_and_rate_limited_replies_wait() {
    let mut j = job(JobStatus::Succeeded);
    j.delivered_at = Some(now());
    assert_eq!(on_due(&mut j, now()), Action::Wait);

    let mut j = job(JobStatus::Succeeded);
    let later = now() + chrono::Duration::seconds(3);
    j.last_edit_at = Some(later);
    assert_eq!(on_due(&mut j, now()), Action::Wait);
    assert_eq!(j.next_run_at, later);
}

#[test]
fn create_outcomes() {
    let first_poll = Duration::from_secs(5);
    // Accepted: submitted, priced, first poll scheduled.
    let mut j = job(JobStatus::Submitting);
    let created = Created { job_id: "p-9".into(), amount: Some(rust_decimal::Decimal::new(4, 2)) };
    on_create(&mut j, Ok(created), now(), first_poll, &TIMING);
    assert_eq!(j.status, JobStatus::Submitted);
    assert_eq!((j.provider_job_id.as_deref(), j.amount), (Some("p-9"), Some(rust_decimal::Decimal::new(4, 2))));
    assert_eq!((j.submitted_at, j.next_run_at), (Some(now()), now() + chrono::Duration::seconds(5)));
    assert!(j.counted);

    // Not taken (429, 503, code 3000, never connected): back to queued, retried with backoff.
    let mut j = job(JobStatus::Submitting);
    on_create(&mut j, Err(transient(false)), now(), first_poll, &TIMING);
    assert_eq!((j.status, j.create_attempts, j.counted), (JobStatus::Queued, 1, true));
    assert_eq!(j.next_run_at, now() + chrono::Duration::seconds(2));
    // Retry-After wins when longer.
    let mut j = job(JobStatus::Submitting);
    let limited = ProviderError::Transient {
        reason: "429".into(),
        retry_after: Some(Duration::from_secs(30)),
        may_have_landed: false,
    };
    on_create(&mut j, Err(limited), now(), first_poll, &TIMING);
    assert_eq!(j.next_run_at, now() + chrono::Duration::seconds(30));
    // ...until the attempts run out: failed and refunded.
    let mut j = job(JobStatus::Submitting);
    j.create_attempts = MAX_CREATE_ATTEMPTS - 1;
    on_create(&mut j, Err(transient(false)), now(), first_poll, &TIMING);
    assert_refunded(&j, JobStatus::Failed, "not answering");

    // Maybe taken (timeout after sending, unreadable answer): uncertain, never resent.
    let mut j = job(JobStatus::Submitting);
    on_create(&mut j, Err(transient(true)), now(), first_poll, &TIMING);
    assert_refunded(&j, JobStatus::Uncertain, "could not confirm");
    assert_eq!(j.create_attempts, 0);

    // Refused: failed with the provider's words when they are about the request, refunded.
    let mut j = job(JobStatus::Submitting);
    on_create(&mut j, Err(rejected("banned   prompt.\n")), now(), first_poll, &TIMING);
    assert_refunded(&j, JobStatus::Failed, "refused this request: banned prompt.");
    // ...and without them when they are about the bot's account.
    let mut j = job(JobStatus::Submitting);
    on_create(&mut j, Err(rejected("Insufficient balance, please recharge")), now(), first_poll, &TIMING);
    assert_refunded(&j, JobStatus::Failed, SERVICE_REFUSING);
    assert!(!j.error_text.unwrap().contains("balance"));
}

#[test]
fn a_job_held_back_by_the_open_breaker_waits_unsent_then_fails_refunded_at_its_deadline() {
    let mut j = job(JobStatus::Queued);
    assert_eq!(on_due(&mut j, now()), Action::Create);
    on_breaker_open(&mut j, now(), Duration::from_secs(2), &TIMING);
    assert_eq!((j.status, j.counted, j.create_attempts), (JobStatus::Queued, true, 0));
    assert_eq!(j.next_run_at, now() + chrono::Duration::seconds(2));
    assert_eq!(j.error_text, None);

    let mut j = job(JobStatus::Queued);
    j.created_at = now() - chrono::Duration::seconds(600);
    assert_eq!(on_due(&mut j, now()), Action::Create);
    on_breaker_open(&mut j, now(), Duration::from_secs(2), &TIMING);
    assert_refunded(&j, JobStatus::Failed, HELD_BY_BREAKER);
    assert_eq!(j.provider_job_id, None);
}

#[test]
fn query_outcomes() {
    let next = Duration::from_secs(2);
    let in_2s = now() + chrono::Duration::seconds(2);

    let mut j = job(JobStatus::Submitted);
    on_query(&mut j, Ok(state(Phase::Queued)), now(), next, &TIMING);
    assert_eq!((j.status, j.next_run_at), (JobStatus::Submitted, in_2s));

    let mut j = job(JobStatus::Submitted);
    on_query(&mut j, Ok(JobState { progress: Some(40), ..state(Phase::Running) }), now(), next, &TIMING);
    assert_eq!((j.status, j.running_at, j.progress, j.next_run_at), (JobStatus::Running, Some(now()), Some(40), in_2s));

    let mut j = job(JobStatus::Running);
    on_query(&mut j, Ok(state(Phase::Succeeded(vec!["https://img/1.png".into()]))), now(), next, &TIMING);
    assert_eq!((j.status, j.finished_at, j.next_run_at), (JobStatus::Succeeded, Some(now()), now()));
    assert_eq!(j.result_urls, ["https://img/1.png"]);
    assert!(j.counted, "a success is paid for");

    let many: Vec<String> = (0..15).map(|i| format!("https://img/{i}.png")).collect();
    let mut j = job(JobStatus::Running);
    on_query(&mut j, Ok(state(Phase::Succeeded(many))), now(), next, &TIMING);
    assert_eq!(j.result_urls.len(), MAX_RESULT_IMAGES, "never more than one message can carry");

    let mut j = job(JobStatus::Running);
    on_query(&mut j, Ok(state(Phase::Failed(Some("moderated".into())))), now(), next, &TIMING);
    assert_refunded(&j, JobStatus::Failed, "could not make this image: moderated.");
    let mut j = job(JobStatus::Running);
    on_query(&mut j, Ok(state(Phase::Failed(None))), now(), next, &TIMING);
    assert_refunded(&j, JobStatus::Failed, "no reason given");
    let mut j = job(JobStatus::Running);
    on_query(&mut j, Ok(state(Phase::Failed(Some("account suspended".into())))), now(), next, &TIMING);
    assert_refunded(&j, JobStatus::Failed, DETAILS_IN_LOGS);
    assert!(!j.error_text.unwrap().contains("suspended"));
}

#[test]
fn unknown_states_and_refused_queries_fail_the_job_on_the_third() {
    for outcome in [|| Ok(state(Phase::Unknown("7".into()))), || Err(rejected("no such job"))] {
        let mut j = job(JobStatus::Running);
        for poll in 1..MAX_UNKNOWN_POLLS {
            on_query(&mut j, outcome(), now(), Duration::from_secs(2), &TIMING);
            assert_eq!((j.status, j.unknown_polls), (JobStatus::Running, poll));
        }
        on_query(&mut j, outcome(), now(), Duration::from_secs(2), &TIMING);
        assert_eq!((j.status, j.counted), (JobStatus::Failed, false));
    }
    // A known state in between starts the count again.
    let mut j = job(JobStatus::Running);
    j.unknown_polls = MAX_UNKNOWN_POLLS - 1;
    on_query(&mut j, Ok(state(Phase::Running)), now(), Duration::from_secs(2), &TIMING);
    assert_eq!(j.unknown_polls, 0);
}

#[test]
fn a_failed_query_costs_at_most_one_short_interval_unless_the_provider_asks_for_more() {
    let mut j = job(JobStatus::Running);
    on_query(&mut j, Err(transient(false)), now(), Duration::from_secs(1), &TIMING);
    assert_eq!((j.status, j.poll_failures, j.counted), (JobStatus::Running, 1, true));
    assert_eq!(j.next_run_at, now() + chrono::Duration::seconds(1), "never longer than the job's own next wait");
    // However many fail in a row, and however long the job's normal wait (a quiet stretch).
    for _ in 0..5 {
        on_query(&mut j, Err(transient(false)), now(), Duration::from_secs(15), &TIMING);
        assert_eq!(j.next_run_at, now() + chrono::Duration::seconds(2));
    }
    let limited = ProviderError::Transient {
        reason: "429".into(),
        retry_after: Some(Duration::from_secs(20)),
        may_have_landed: false,
    };
    on_query(&mut j, Err(limited), now(), Duration::from_secs(2), &TIMING);
    assert_eq!(j.next_run_at, now() + chrono::Duration::seconds(20));
    // A good answer resets the count.
    on_query(&mut j, Ok(state(Phase::Running)), now(), Duration::from_secs(2), &TIMING);
    assert_eq!(j.poll_failures, 0);
}

#[test]
fn download_failures_retry_then_fail_refunded() {
    let mut j = job(JobStatus::Succeeded);
    on_download_failed(&mut j, now(), &TIMING);
    assert_eq!((j.status, j.delivery_attempts), (JobStatus::Succeeded, 1));
    assert_eq!(j.next_run_at, now() + chrono::Duration::seconds(2));
    j.delivery_attempts = MAX_DOWNLOAD_ATTEMPTS - 1;
    on_download_failed(&mut j, now(), &TIMING);
    assert_refunded(&j, JobStatus::Failed, "could not fetch them");
}

#[test]
fn delivery_outcomes() {
    for route in [Delivery::Edit, Delivery::Channel] {
        let mut j = job(JobStatus::Succeeded);
        on_delivery(&mut j, Ok((route, 77)), now(), &TIMING);
        assert_eq!((j.delivery, j.message_id, j.delivered_at), (Some(route), Some(DiscordId::new(77)), Some(now())));
        assert_eq!(j.interaction_token, None, "the token is erased once delivered");
        assert_eq!(j.status, JobStatus::Succeeded);
    }

    let finished = |status| {
        let mut j = job(status);
        j.finished_at = Some(now() - chrono::Duration::seconds(60));
        j
    };
    let mut j = finished(JobStatus::Succeeded);
    on_delivery(&mut j, Err(SendError::RateLimited(Duration::from_secs(4))), now(), &TIMING);
    let later = now() + chrono::Duration::seconds(4);
    assert_eq!((j.next_run_at, j.last_edit_at, j.delivered_at), (later, Some(later), None));
    assert_eq!(j.delivery_attempts, 0, "a rate limit is not a failure");
    // ... but it does not outlast the delivery deadline.
    let mut j = finished(JobStatus::Succeeded);
    j.finished_at = Some(now() - chrono::Duration::seconds(3598));
    on_delivery(&mut j, Err(SendError::RateLimited(Duration::from_secs(4))), now(), &TIMING);
    assert_eq!(
        (j.delivery, j.delivered_at, j.status),
        (Some(Delivery::Undelivered), Some(now()), JobStatus::Succeeded)
    );

    for error in [SendError::Transient("502".into()), SendError::TooLarge, SendError::ReplyGone("10015".into())] {
        let mut j = finished(JobStatus::Succeeded);
        on_delivery(&mut j, Err(error.clone()), now(), &TIMING);
        assert_eq!((j.delivery_attempts, j.delivered_at), (1, None), "{error:?}");
        assert_eq!(j.next_run_at, now() + chrono::Duration::seconds(2));
        // Backoff grows to a short cap, attempt after attempt, until the deadline.
        j.delivery_attempts = 30;
        on_delivery(&mut j, Err(error.clone()), now(), &TIMING);
        assert_eq!((j.next_run_at, j.delivered_at), (now() + chrono::Duration::seconds(15), None), "{error:?}");
        j.finished_at = Some(now() - chrono::Duration::seconds(3590));
        on_delivery(&mut j, Err(error), now(), &TIMING);
        assert_eq!((j.delivery, j.delivered_at), (Some(Delivery::Undelivered), Some(now())));
        assert!(j.counted, "the images were made: the job still counts");
    }

    let mut j = job(JobStatus::Failed);
    on_delivery(&mut j, Err(SendError::Refused("50013".into())), now(), &TIMING);
    assert_eq!((j.delivery, j.interaction_token.as_deref()), (Some(Delivery::Undelivered), None));
}

#[test]
fn progress_edits_are_recorded() {
    let mut j = job(JobStatus::Running);
    on_progress_edit(&mut j, Ok((88, "generating".into())), now());
    assert_eq!(
        (j.message_id, j.last_edit_text.as_deref(), j.last_edit_at),
        (Some(DiscordId::new(88)), Some("generating"), Some(now()))
    );
    on_progress_edit(&mut j, Err(SendError::RateLimited(Duration::from_secs(5))), now());
    assert_eq!(j.last_edit_at, Some(now() + chrono::Duration::seconds(5)));
    assert_eq!(j.status, JobStatus::Running);
}

#[test]
fn backoff_grows_and_is_capped() {
    let base = Duration::from_secs(2);
    let cap = Duration::from_secs(60);
    for attempt in 1..20 {
        let ideal = base.saturating_mul(1 << (attempt - 1).min(15)).min(cap);
        assert_eq!(backoff(attempt, base, cap, 1.0), ideal, "{attempt}");
        assert_eq!(backoff(attempt, base, cap, 0.5), ideal / 2, "{attempt}");
        let d = backoff(attempt, base, cap, jitter());
        assert!(d <= cap && d >= ideal / 2, "{attempt}: {d:?}");
    }
}

#[test]
fn a_job_waiting_for_a_slot_asks_first_and_is_sent_only_once_admitted() {
    let mut waiting = Job { slot_limit: Some(1), ..job(JobStatus::Queued) };
    assert_eq!(on_due(&mut waiting, now()), Action::Admit);
    assert_eq!(waiting.status, JobStatus::Queued, "nothing sent while it asks");

    on_admission(&mut waiting, Admission::Waiting { place: 3 }, now());
    assert_eq!((waiting.status, waiting.place, waiting.slot_limit), (JobStatus::Queued, Some(3), Some(1)));
    assert_eq!(waiting.next_run_at, now() + SLOT_RECHECK);
    assert!(waiting.counted, "it stays counted while it waits");

    on_admission(&mut waiting, Admission::Admitted, now());
    assert_eq!(waiting.slot_limit, None);
    assert_eq!(on_due(&mut waiting, now()), Action::Create);
    assert_eq!(waiting.status, JobStatus::Submitting);

    // One whose reply never reached the user is dropped, waiting or not.
    let mut unseen = Job { slot_limit: Some(1), reply_failed: true, ..job(JobStatus::Queued) };
    assert_eq!(on_due(&mut unseen, now()), Action::Wait);
    assert_refunded(&unseen, JobStatus::Failed, REPLY_FAILED);
}

#[test]
fn only_moderation_reads_as_declined_and_every_other_failure_may_be_retried() {
    let declined_by = |outcome: Result<JobState, ProviderError>| {
        let mut j = job(JobStatus::Running);
        on_query(&mut j, outcome, now(), Duration::from_secs(5), &TIMING);
        j.status.declined_by_moderation(j.error_text.as_deref())
    };
    for words in ["moderated", "Image flagged by moderation", "NSFW content", "prompt contains banned words"] {
        assert!(declined_by(Ok(state(Phase::Failed(Some(words.into()))))), "{words}");
        let mut j = job(JobStatus::Submitting);
        on_create(&mut j, Err(rejected(words)), now(), Duration::from_secs(5), &TIMING);
        assert!(j.status.declined_by_moderation(j.error_text.as_deref()), "refused at create: {words}");
    }
    for words in ["account suspended", "invalid image url", "internal error"] {
        assert!(!declined_by(Ok(state(Phase::Failed(Some(words.into()))))), "{words}");
    }
    assert!(!declined_by(Ok(state(Phase::Failed(None)))));
    // The bot's own sentences for failures are never taken for moderation: those jobs offer Retry.
    let fixed = [UNCERTAIN, SERVICE_REFUSING, HELD_BY_BREAKER, SERVICE_DOWN, UNKNOWN_STATE, IMAGES_UNREACHABLE];
    for sentence in fixed.into_iter().chain([DETAILS_IN_LOGS, REPLY_FAILED, NEVER_ACKNOWLEDGED]) {
        assert!(!JobStatus::Failed.declined_by_moderation(Some(sentence)), "{sentence}");
    }
    assert!(!JobStatus::Succeeded.declined_by_moderation(Some("flagged")), "only a failure is declined");
    let retryable: Vec<JobStatus> = JobStatus::ALL.into_iter().filter(|s| s.retryable()).collect();
    assert_eq!(retryable, [JobStatus::Failed, JobStatus::TimedOut, JobStatus::Uncertain]);
}
