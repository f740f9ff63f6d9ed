-- Run 2: a new sqlite3 process reopens the database of run 1 and sees its rows: they persisted
-- through the encrypted files. journal_mode = PERSIST keeps /db/test.db-journal after COMMIT, so
-- `make check` can show on the host that the journal (the pages as they were before this
-- transaction, i.e. plaintext rows) is encrypted as well.
.bail on
SELECT 'update: rows of the first run ' || count(*) FROM secrets;
SELECT name || ' = ' || value FROM secrets WHERE name NOT LIKE 'filler-%' ORDER BY id;
PRAGMA journal_mode = PERSIST;
BEGIN;
UPDATE secrets SET value = value || '-updated' WHERE name = 'beta';
DELETE FROM secrets WHERE name LIKE 'filler-%' AND id % 2 = 0;
INSERT INTO secrets (name, value) VALUES ('delta', 'moat-sqlite-secret-delta');
COMMIT;
-- rolled back: run 3 must not see it
BEGIN;
DELETE FROM secrets;
ROLLBACK;
SELECT 'update: rows ' || count(*) FROM secrets;
