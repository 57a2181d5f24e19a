-- wicbox-bridge schema version 5 (PostgreSQL): how many recipients each sent outbox mail had.
--
-- RECIPIENT_COUNT is written when a mail is marked SENT (every envelope recipient: To, Cc and Bcc)
-- and read to keep Exchange Online's limit of 10,000 recipients a day per sending mailbox, also
-- across runs. NULL for mails sent before this version (they count as one).

ALTER TABLE WICBOX_OUTBOX ADD COLUMN IF NOT EXISTS RECIPIENT_COUNT INTEGER NULL;
