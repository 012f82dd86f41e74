-- Per-job secret in the provider callback URL: a callback is only a hint to query the job now,
-- and only a URL carrying this secret is taken as one.
ALTER TABLE jobs ADD COLUMN callback_secret text;
