-- wicbox-bridge schema version 1 (SQL Server 2016 and later): the tables wicbox-bridge reads and
-- its version table.
--
-- WICMAN_PARAMETER and WIC_PROJECT belong to WIC: they are created only when missing, and only the
-- WICBOX_* columns wicbox-bridge reads are added to an existing WIC_PROJECT. Nothing is dropped
-- or rewritten. Tables are created in the login's default schema (normally dbo), where WIC has
-- them. wicbox-bridge runs the batches below in one transaction and records the version in
-- WICBOX_SCHEMA_VERSION; every batch is guarded, so the script is safe to run again (sqlcmd, SSMS).
-- Text columns are NVARCHAR so names and passwords outside Latin-1 survive.

IF OBJECT_ID(N'WICMAN_PARAMETER', N'U') IS NULL
    CREATE TABLE WICMAN_PARAMETER (
        NAME  NVARCHAR(128) NOT NULL PRIMARY KEY,
        VALUE NVARCHAR(4000) NULL
    );
GO

IF OBJECT_ID(N'WIC_PROJECT', N'U') IS NULL
    CREATE TABLE WIC_PROJECT (
        PROJECT_ID INT NOT NULL PRIMARY KEY,
        CODE       NVARCHAR(50) NOT NULL UNIQUE,
        NAME       NVARCHAR(200) NULL,
        ACTIVE     INT NOT NULL DEFAULT 1
    );
GO

IF COL_LENGTH(N'WIC_PROJECT', N'WICBOX_MAILBOX') IS NULL
    ALTER TABLE WIC_PROJECT ADD WICBOX_MAILBOX NVARCHAR(320) NULL;
GO

IF COL_LENGTH(N'WIC_PROJECT', N'WICBOX_USERNAME') IS NULL
    ALTER TABLE WIC_PROJECT ADD WICBOX_USERNAME NVARCHAR(320) NULL;
GO

IF COL_LENGTH(N'WIC_PROJECT', N'WICBOX_PASSWORD') IS NULL
    ALTER TABLE WIC_PROJECT ADD WICBOX_PASSWORD NVARCHAR(400) NULL;
GO

IF COL_LENGTH(N'WIC_PROJECT', N'WICBOX_ACCOUNTMODE') IS NULL
    ALTER TABLE WIC_PROJECT ADD WICBOX_ACCOUNTMODE NVARCHAR(10) NULL;
GO

IF OBJECT_ID(N'WICBOX_SCHEMA_VERSION', N'U') IS NULL
    CREATE TABLE WICBOX_SCHEMA_VERSION (
        VERSION     INT NOT NULL CONSTRAINT PK_WICBOX_SCHEMA_VERSION PRIMARY KEY,
        DESCRIPTION NVARCHAR(200) NULL,
        APPLIED_AT  DATETIME2 NOT NULL CONSTRAINT DF_WICBOX_SCHEMA_VERSION_APPLIED_AT DEFAULT SYSUTCDATETIME()
    );
GO
