-- A member's controls over their own job. `cancelled`: a job stopped by its owner or a member with
-- Manage Messages before it was sent (final, refunded, never sent); who did it is kept beside it.
-- A deleted result keeps its row (history, spend) but its message is gone.
ALTER TYPE job_status ADD VALUE 'cancelled';
ALTER TABLE jobs
    ADD COLUMN cancelled_by BIGINT,
    ADD COLUMN deleted_at TIMESTAMPTZ,
    ADD COLUMN deleted_by BIGINT;
