-- Result images of jobs that could not be delivered to Discord, kept so /history can show them
-- (the provider's URLs expire quickly).
CREATE TABLE job_images (
    job_id    uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position  integer NOT NULL,
    filename  text NOT NULL,
    bytes     bytea NOT NULL,
    PRIMARY KEY (job_id, position)
);
