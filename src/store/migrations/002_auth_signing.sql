-- herald schema, version 2: per-webhook authentication and signing, as JSON
-- (see src/spec/auth.rs and src/spec/signing.rs for the shapes; secrets are stored
-- as given: the file is mode 0600).
ALTER TABLE webhooks ADD COLUMN auth TEXT NOT NULL DEFAULT '{"kind":"none"}';
ALTER TABLE webhooks ADD COLUMN signing TEXT NOT NULL DEFAULT '{"kind":"none"}';
