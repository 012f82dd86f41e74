-- A job started from a result's button (V1–V4, Reroll, Remix) names the job it came from and the
-- button, so /history can link the two. Jobs are never deleted, so the reference always resolves.
ALTER TABLE jobs
    ADD COLUMN parent_job_id uuid REFERENCES jobs (id),
    ADD COLUMN origin text CHECK (origin IN ('V1', 'V2', 'V3', 'V4', 'Reroll', 'Remix')),
    ADD CONSTRAINT jobs_origin_has_parent CHECK ((parent_job_id IS NULL) = (origin IS NULL));

CREATE INDEX jobs_parent_job_id ON jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;
