-- wicbox-bridge schema version 7 (SQL Server 2016 and later): leases, so several hosts share the
-- mailboxes.
--
-- One row per mailbox (lower case). A host works a mailbox only while its row names that host's
-- process (OWNER_KEY) and EXPIRES_AT, by the database's clock, is still ahead. TOKEN (the fencing
-- token) grows by one with every new owner; every filing and acknowledgement checks it in its own
-- transaction, so a host that lost its lease can no longer file or acknowledge. Guarded: safe to
-- run again.

IF OBJECT_ID(N'WICBOX_LEASE', N'U') IS NULL
    CREATE TABLE WICBOX_LEASE (
        MAILBOX NVARCHAR(320) NOT NULL,
        OWNER_KEY NVARCHAR(36) NULL,
        OWNER_HOST NVARCHAR(255) NULL,
        OWNER_PID INT NULL,
        TOKEN BIGINT NOT NULL,
        ACQUIRED_AT DATETIME2 NULL,
        EXPIRES_AT DATETIME2 NOT NULL,
        CONSTRAINT PK_WICBOX_LEASE PRIMARY KEY (MAILBOX)
    );
GO
