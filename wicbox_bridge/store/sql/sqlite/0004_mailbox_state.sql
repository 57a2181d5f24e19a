-- wicbox-bridge schema version 4 (SQLite): the state of every mailbox as the last pass left it.
--
-- WICBOX_MAILBOX_STATE has one row per mailbox address (lower case) and source folder, written by
-- `wicbox run` after each pass over the mailbox (dry runs write nothing) and read by
-- `wicbox status`, which needs no mail server. LAST_ATTEMPT_AT: the last pass; LAST_SUCCESS_AT:
-- the last pass that finished without error; LAST_ERROR_*: the last failed pass (ERROR_KIND is
-- authentication, connection, mailbox, database, configuration or other; ERROR_CODE an identity
-- platform code such as AADSTS50126; message and fix never hold secrets). BACKLOG: the mails
-- still waiting in the folder when BACKLOG_MEASURED_AT was measured, OLDEST_PENDING_AT the oldest
-- one's received time (NULL: none waits, or unknown). LABEL and PROJECT_CODE name the account as
-- the run's report does. Times are UTC.

CREATE TABLE IF NOT EXISTS WICBOX_MAILBOX_STATE (
    STATE_ID            INTEGER PRIMARY KEY AUTOINCREMENT,
    MAILBOX             VARCHAR(320) NOT NULL,
    FOLDER              VARCHAR(400) NOT NULL,
    LABEL               VARCHAR(200) NOT NULL,
    PROJECT_CODE        VARCHAR(50) NULL,
    PROTOCOL            VARCHAR(10) NOT NULL,
    LAST_RUN_ID         INTEGER NULL,
    LAST_ATTEMPT_AT     TIMESTAMP NOT NULL,
    LAST_SUCCESS_AT     TIMESTAMP NULL,
    LAST_ERROR_AT       TIMESTAMP NULL,
    ERROR_KIND          VARCHAR(20) NULL,
    ERROR_CODE          VARCHAR(20) NULL,
    ERROR_MESSAGE       VARCHAR(4000) NULL,
    ERROR_FIX           VARCHAR(4000) NULL,
    BACKLOG             INTEGER NULL,
    OLDEST_PENDING_AT   TIMESTAMP NULL,
    BACKLOG_MEASURED_AT TIMESTAMP NULL,
    CONSTRAINT UQ_WICBOX_MAILBOX_STATE UNIQUE (MAILBOX, FOLDER)
);
