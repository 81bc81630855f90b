-- Web UI sessions (SPEC §10): the cookie carries the operator id and this epoch; signing out
-- ("everywhere") bumps it, so every copy of an older cookie stops working at once.
ALTER TABLE operators ADD COLUMN session_epoch integer NOT NULL DEFAULT 0;
