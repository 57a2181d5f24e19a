-- wicbox-bridge schema version 6 (SQL Server 2016 and later): where an outbox mail came from.
--
-- SOURCE is NULL for the mails WIC writes into WICBOX_OUTBOX itself, and 'relay:<account>' for a
-- message that an application handed to `wicbox relay` with that relay account; `wicbox status`
-- counts the relayed messages by it. Guarded: safe to run again.

IF COL_LENGTH(N'WICBOX_OUTBOX', N'SOURCE') IS NULL
    ALTER TABLE WICBOX_OUTBOX ADD SOURCE NVARCHAR(100) NULL;
GO
