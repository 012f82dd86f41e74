-- The button a job was started from, as a type of its own: the database refuses anything else,
-- and the bot reads it as `db::jobs::JobOrigin`.
CREATE TYPE job_origin AS ENUM ('V1', 'V2', 'V3', 'V4', 'Reroll', 'Remix');
ALTER TABLE jobs DROP CONSTRAINT jobs_origin_check;
ALTER TABLE jobs ALTER COLUMN origin TYPE job_origin USING origin::job_origin;
