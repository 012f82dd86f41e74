-- A guild's monthly budget in US dollars (NULL: none): the month's recorded spend plus the
-- expected cost of the new job may not pass it. Checked in the reservation, under the guild's lock.
ALTER TABLE guild_quotas ADD COLUMN monthly_budget numeric CHECK (monthly_budget >= 0);

-- Every change of a budget, like quota_changes for the job limits.
CREATE TABLE budget_changes (
    id          bigserial PRIMARY KEY,
    guild_id    bigint NOT NULL,
    changed_by  bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    old_budget  numeric,
    new_budget  numeric
);
CREATE INDEX budget_changes_guild ON budget_changes (guild_id, changed_at DESC);
