-- wicbox-bridge schema version 6 (PostgreSQL): where an outbox mail came from.
--
-- SOURCE is NULL for the mails WIC writes into WICBOX_OUTBOX itself, and 'relay:<account>' for a
-- message that an application handed to `wicbox relay` with that relay account; `wicbox status`
-- counts the relayed messages by it.

ALTER TABLE WICBOX_OUTBOX ADD COLUMN IF NOT EXISTS SOURCE VARCHAR(100) NULL;
