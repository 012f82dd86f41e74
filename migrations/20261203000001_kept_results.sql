-- A job's result images are kept in job_images from the first delivery attempt that Discord did
-- not take: every retry uploads the kept bytes, so a Discord outage that outlives the provider's
-- short-lived links no longer loses a paid result. Set in the transaction that stores them.
ALTER TABLE jobs ADD COLUMN images_kept boolean NOT NULL DEFAULT false;
