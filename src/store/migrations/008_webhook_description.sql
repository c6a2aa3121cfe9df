-- What a webhook is for, in the admin's words (RCManager's create call sends
-- one); empty when not given.
ALTER TABLE webhooks ADD COLUMN description TEXT NOT NULL DEFAULT '';
