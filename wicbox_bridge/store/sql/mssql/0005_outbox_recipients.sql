-- wicbox-bridge schema version 5 (SQL Server 2016 and later): how many recipients each sent outbox
-- mail had.
--
-- RECIPIENT_COUNT is written when a mail is marked SENT (every envelope recipient: To, Cc and Bcc)
-- and read to keep Exchange Online's limit of 10,000 recipients a day per sending mailbox, also
-- across runs. NULL for mails sent before this version (they count as one). Guarded: safe to run
-- again.

IF COL_LENGTH(N'WICBOX_OUTBOX', N'RECIPIENT_COUNT') IS NULL
    ALTER TABLE WICBOX_OUTBOX ADD RECIPIENT_COUNT INT NULL;
GO
