-- A fencing token per claim: a worker's writes count only while the job's token is still the one
-- its claim received, so a stale copy of a job (a lease lost and the job claimed again, by
-- another process or the same one) can never save over the current owner's work.
ALTER TABLE jobs ADD COLUMN lease_token uuid;
