-- Per-member limits for members holding a role (patrons, boosters): they replace the guild's
-- per-member limits; with several such roles the most generous value wins. NULL: the role does
-- not set that limit.
CREATE TABLE guild_role_limits (
    guild_id              bigint NOT NULL,
    role_id               bigint NOT NULL,
    per_user_daily_limit  integer CHECK (per_user_daily_limit >= 0),
    max_concurrent        integer CHECK (max_concurrent >= 0),
    updated_by            bigint NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (guild_id, role_id)
);

-- A change to a role's limits is audited like a guild limit, naming the role.
ALTER TABLE quota_changes ADD COLUMN role_id bigint;
