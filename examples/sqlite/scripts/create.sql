-- Run 1: a new database on the encrypted mount /db (moat run sqlite3 < scripts/create.sql).
-- The inserts are one transaction: sqlite writes /db/test.db-journal (an encrypted file too, as
-- everything under the mount) and deletes it at COMMIT (journal_mode = DELETE, the default).
.bail on
CREATE TABLE secrets (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value TEXT NOT NULL);
BEGIN;
INSERT INTO secrets (name, value) VALUES
  ('alpha', 'moat-sqlite-secret-alpha'),
  ('beta', 'moat-sqlite-secret-beta'),
  ('gamma', 'moat-sqlite-secret-gamma');
-- 200 more rows: the database spans several pages, so several encrypted data nodes
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
  INSERT INTO secrets (name, value)
  SELECT 'filler-' || i, 'moat-sqlite-secret-' || hex(randomblob(24)) FROM n;
COMMIT;
SELECT 'create: rows ' || count(*) FROM secrets;
