-- Where a guild's admins hear about budget thresholds, moderation refusals, blocked members, the
-- operator's spend limit and the image service refusing the bot (`/settings log_channel`; NULL:
-- nowhere), and whether a long job's owner gets a follow-up ping when it is done
-- (`/settings notify`; NOTIFY_AFTER).
ALTER TABLE guild_settings
    ADD COLUMN log_channel_id bigint,
    ADD COLUMN notify boolean NOT NULL DEFAULT true;

-- Both are audited like the other settings.
ALTER TYPE setting_name ADD VALUE 'log_channel';
ALTER TYPE setting_name ADD VALUE 'notify';

-- Notices that go out once, whichever process notices first: a budget threshold once a month
-- (period '2026-12'), the operator's spend limit once a day, a moderation refusal or a follow-up
-- ping once per job (period: the job's id). The image service refusing the bot has one row per
-- guild, claimed again once `sent_at` is an hour old. The INSERT that creates (or re-claims) the
-- row decides who posts.
CREATE TABLE log_notices (
    guild_id  bigint NOT NULL,
    notice    text NOT NULL,
    period    text NOT NULL,
    sent_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (guild_id, notice, period)
);
