-- wicbox-bridge schema version 4 (SQL Server 2016 and later): the state of every mailbox as the
-- last pass left it.
--
-- WICBOX_MAILBOX_STATE has one row per mailbox address (lower case) and source folder, written by
-- `wicbox run` after each pass over the mailbox (dry runs write nothing) and read by
-- `wicbox status`, which needs no mail server. LAST_ATTEMPT_AT: the last pass; LAST_SUCCESS_AT:
-- the last pass that finished without error; LAST_ERROR_*: the last failed pass (ERROR_KIND is
-- authentication, connection, mailbox, database, configuration or other; ERROR_CODE an identity
-- platform code such as AADSTS50126; message and fix never hold secrets). BACKLOG: the mails
-- still waiting in the folder when BACKLOG_MEASURED_AT was measured, OLDEST_PENDING_AT the oldest
-- one's received time (NULL: none waits, or unknown). LABEL and PROJECT_CODE name the account as
-- the run's report does. Times are UTC. The unique key (MAILBOX, FOLDER) is at most 1,440 bytes,
-- within SQL Server's 1,700 for a nonclustered index. Every batch is guarded: safe to run again.

IF OBJECT_ID(N'WICBOX_MAILBOX_STATE', N'U') IS NULL
    CREATE TABLE WICBOX_MAILBOX_STATE (
        STATE_ID            INT IDENTITY(1,1) NOT NULL CONSTRAINT PK_WICBOX_MAILBOX_STATE PRIMARY KEY,
        MAILBOX             NVARCHAR(320) NOT NULL,
        FOLDER              NVARCHAR(400) NOT NULL,
        LABEL               NVARCHAR(200) NOT NULL,
        PROJECT_CODE        NVARCHAR(50) NULL,
        PROTOCOL            NVARCHAR(10) NOT NULL,
        LAST_RUN_ID         INT NULL,
        LAST_ATTEMPT_AT     DATETIME2 NOT NULL,
        LAST_SUCCESS_AT     DATETIME2 NULL,
        LAST_ERROR_AT       DATETIME2 NULL,
        ERROR_KIND          NVARCHAR(20) NULL,
        ERROR_CODE          NVARCHAR(20) NULL,
        ERROR_MESSAGE       NVARCHAR(4000) NULL,
        ERROR_FIX           NVARCHAR(4000) NULL,
        BACKLOG             INT NULL,
        OLDEST_PENDING_AT   DATETIME2 NULL,
        BACKLOG_MEASURED_AT DATETIME2 NULL,
        CONSTRAINT UQ_WICBOX_MAILBOX_STATE UNIQUE NONCLUSTERED (MAILBOX, FOLDER)
    );
GO
