-- Optional queueing (/quota set max_queued): a member's job past max_concurrent may wait its turn
-- instead of being refused, up to max_queued such jobs per member (0: refuse, as before).
ALTER TABLE guild_quotas ADD COLUMN max_queued integer NOT NULL DEFAULT 0 CHECK (max_queued >= 0);
ALTER TYPE limit_kind ADD VALUE 'max_queued';

-- Set on a job accepted past max_concurrent: the member's max_concurrent it waits under. It is not
-- sent while the member has that many jobs sent or admitted; the worker clears it (admits the job)
-- under the guild's quota lock, the one every reservation takes.
ALTER TABLE jobs ADD COLUMN slot_limit integer;
