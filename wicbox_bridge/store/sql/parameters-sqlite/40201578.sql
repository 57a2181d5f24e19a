-- 40201578 (SQLite): add the WICBOXMETHOD parameter (OAuth2 or Basic).
-- The vendor's KPD parameter scripts are split by topic and run in number order:
--   40201575  add the six WICBOX_MAILCLIENT_* parameters (SCOPE, CLIENTID, CLIENTSECRET, TENANTID,
--             USERNAME, PASSWORD), empty, when missing;
--   40201577  rename ACCOUNTMODE to WICBOXACCOUNTMODE, keeping its value (when both exist,
--             WICBOXACCOUNTMODE is kept, ACCOUNTMODE is left as it is and a message says so);
--   40201578  add WICBOXMETHOD, empty, when missing.
-- Names are compared case-insensitively (WICMan holds both WICBOXMethod and WICBOXMETHOD);
-- no value is ever changed and nothing is deleted. Each script is safe to run twice.
-- `wicbox params migrate` makes the same change in one transaction and reports it.

INSERT INTO WICMAN_PARAMETER (NAME, VALUE)
SELECT 'WICBOXMETHOD', NULL
WHERE NOT EXISTS (SELECT 1 FROM WICMAN_PARAMETER WHERE UPPER(NAME) = 'WICBOXMETHOD');
