-- Jobs: the full history of every /imagine, and the work queue the workers claim from.
CREATE TYPE job_status AS ENUM (
    'queued',      -- accepted, not yet sent to the provider
    'submitting',  -- create request in flight; if found after a crash the outcome is uncertain
    'submitted',   -- the provider accepted it (provider_job_id set)
    'running',     -- the provider reports it running
    'succeeded',   -- the provider returned images
    'failed',      -- refused or failed at the provider, or the reply could not be sent
    'timed_out',   -- not finished by the deadline
    'uncertain'    -- the create request may or may not have reached the provider
);

CREATE TABLE jobs (
    id                     uuid PRIMARY KEY,
    interaction_id         bigint NOT NULL UNIQUE,
    application_id         bigint NOT NULL,
    guild_id               bigint NOT NULL,
    channel_id             bigint NOT NULL,
    user_id                bigint NOT NULL,
    -- Secret: lets any process edit the reply. Erased once the job is final and delivered.
    interaction_token      text,
    token_expires_at       timestamptz NOT NULL,
    attachment_size_limit  bigint NOT NULL,
    prompt_raw             text NOT NULL,
    prompt_sent            text NOT NULL,
    negative_prompt        text,
    args                   jsonb NOT NULL,
    input_urls             text[] NOT NULL,
    notes                  text[] NOT NULL DEFAULT '{}',
    status                 job_status NOT NULL DEFAULT 'queued',
    -- Counts against the guild's quota; cleared when the job fails (a refund).
    counted                boolean NOT NULL DEFAULT true,
    provider_job_id        text UNIQUE,
    provider_status        text,
    progress               integer,
    unknown_polls          integer NOT NULL DEFAULT 0,
    amount                 numeric,
    result_urls            text[] NOT NULL DEFAULT '{}',
    error_text             text,
    -- Delivery: the message that shows the job and how it got there (edit, channel, undelivered).
    message_id             bigint,
    delivery               text,
    attempts               integer NOT NULL DEFAULT 0,
    next_run_at            timestamptz NOT NULL DEFAULT now(),
    lease_owner            uuid,
    lease_expires_at       timestamptz,
    acked_at               timestamptz,
    last_edit_at           timestamptz,
    last_edit_text         text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    submitted_at           timestamptz,
    running_at             timestamptz,
    finished_at            timestamptz,
    delivered_at           timestamptz
);

CREATE INDEX jobs_due ON jobs (next_run_at) WHERE delivered_at IS NULL;
CREATE INDEX jobs_guild_window ON jobs (guild_id, created_at) WHERE counted;
CREATE INDEX jobs_user_recent ON jobs (guild_id, user_id, created_at DESC);

-- Per-guild quota limits. NULL means unlimited, 0 means no jobs.
CREATE TABLE guild_quotas (
    guild_id              bigint PRIMARY KEY,
    daily_limit           integer CHECK (daily_limit >= 0),
    monthly_limit         integer CHECK (monthly_limit >= 0),
    per_user_daily_limit  integer CHECK (per_user_daily_limit >= 0),
    max_concurrent        integer CHECK (max_concurrent >= 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_by            bigint,
    updated_at            timestamptz
);

-- Every change an admin makes to a limit.
CREATE TABLE quota_changes (
    id          bigserial PRIMARY KEY,
    guild_id    bigint NOT NULL,
    changed_by  bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    limit_name  text NOT NULL,
    old_value   integer,
    new_value   integer
);
CREATE INDEX quota_changes_guild ON quota_changes (guild_id, changed_at DESC);
