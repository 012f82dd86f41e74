-- A job made by the Retry button of a failed, timed-out or unconfirmed job.
ALTER TYPE job_origin ADD VALUE 'Retry';
