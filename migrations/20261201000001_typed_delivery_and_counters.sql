-- How a job's final message reached Discord, as a type rather than free text.
CREATE TYPE delivery_route AS ENUM (
    'edit',        -- the interaction reply was edited
    'channel',     -- posted in the channel (the interaction token had expired)
    'undelivered'  -- Discord refused or kept failing; /history shows the job
);
ALTER TABLE jobs ALTER COLUMN delivery TYPE delivery_route USING delivery::delivery_route;

-- One counter per purpose, instead of one `attempts` shared by create, poll and delivery.
ALTER TABLE jobs
    ADD COLUMN create_attempts   integer NOT NULL DEFAULT 0,
    ADD COLUMN poll_failures     integer NOT NULL DEFAULT 0,
    ADD COLUMN delivery_attempts integer NOT NULL DEFAULT 0,
    -- The command could not send its reply: the worker drops the job before it costs anything.
    ADD COLUMN reply_failed      boolean NOT NULL DEFAULT false;
UPDATE jobs SET create_attempts = attempts WHERE status = 'queued';
UPDATE jobs SET poll_failures = attempts WHERE status IN ('submitted', 'running');
UPDATE jobs SET delivery_attempts = attempts
    WHERE status IN ('succeeded', 'failed', 'timed_out', 'uncertain') AND delivered_at IS NULL;
ALTER TABLE jobs DROP COLUMN attempts;

-- Quota changes name their limit through a type, so a change can only ever name a real limit.
CREATE TYPE limit_kind AS ENUM ('daily', 'monthly', 'per_user_daily', 'max_concurrent');
ALTER TABLE quota_changes ALTER COLUMN limit_name TYPE limit_kind USING limit_name::limit_kind;
