-- wicbox-bridge schema version 7 (PostgreSQL): leases, so several hosts share the mailboxes.
--
-- One row per mailbox (lower case). A host works a mailbox only while its row names that host's
-- process (OWNER_KEY) and EXPIRES_AT, by the database's clock, is still ahead. TOKEN (the fencing
-- token) grows by one with every new owner; every filing and acknowledgement checks it in its own
-- transaction, so a host that lost its lease can no longer file or acknowledge.

CREATE TABLE IF NOT EXISTS WICBOX_LEASE (
    MAILBOX VARCHAR(320) NOT NULL,
    OWNER_KEY VARCHAR(36) NULL,
    OWNER_HOST VARCHAR(255) NULL,
    OWNER_PID INTEGER NULL,
    TOKEN BIGINT NOT NULL,
    ACQUIRED_AT TIMESTAMP NULL,
    EXPIRES_AT TIMESTAMP NOT NULL,
    PRIMARY KEY (MAILBOX)
);
