-- One member of a guild as its admins handle them with /quota member: blocked from starting jobs
-- (who blocked them, when), and when their per-member daily count was last reset (their jobs of
-- the day before that moment stop counting against them; the job history, the server's counts and
-- the spend are untouched). Read by the reservation under the guild's quota lock, and written
-- under the same lock.
CREATE TABLE guild_members (
    guild_id      bigint NOT NULL,
    user_id       bigint NOT NULL,
    blocked_by    bigint,
    blocked_at    timestamptz,
    day_reset_at  timestamptz,
    PRIMARY KEY (guild_id, user_id),
    CHECK ((blocked_by IS NULL) = (blocked_at IS NULL))
);

-- Every block, unblock and reset: who did it to whom, and when.
CREATE TYPE member_action AS ENUM ('block', 'unblock', 'reset');
CREATE TABLE member_changes (
    id          bigserial PRIMARY KEY,
    guild_id    bigint NOT NULL,
    user_id     bigint NOT NULL,
    changed_by  bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    action      member_action NOT NULL
);
CREATE INDEX member_changes_member ON member_changes (guild_id, user_id, changed_at DESC);
