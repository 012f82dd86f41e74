-- One row that every reservation locks while DAILY_SPEND_LIMIT is set, so the operator-wide
-- spend check and the insert of the job are one step across every guild and process.
CREATE TABLE operator_spend_lock (id integer PRIMARY KEY CHECK (id = 1));
INSERT INTO operator_spend_lock (id) VALUES (1);

-- Today's counted jobs across every guild (the spend check), and the last priced job.
CREATE INDEX jobs_counted_created ON jobs (created_at) WHERE counted;
CREATE INDEX jobs_priced_created ON jobs (created_at DESC) WHERE amount IS NOT NULL;
