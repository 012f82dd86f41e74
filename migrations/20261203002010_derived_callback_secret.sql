-- A job's callback secret is derived from its id by the worker when it sends the create
-- (HMAC under a key derived from SHORTAPI_KEY, the same key the callback listener verifies with),
-- so it is no longer stored. Stored secrets were that same derivation.
ALTER TABLE jobs DROP COLUMN callback_secret;
