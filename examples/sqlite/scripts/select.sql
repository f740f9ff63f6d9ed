-- Run 3: read everything back. integrity_check reads every page first, so on a tampered
-- database (one flipped byte anywhere) the run fails before a single row is served.
.bail on
PRAGMA integrity_check;
SELECT 'select: rows ' || count(*) FROM secrets;
SELECT name || ' = ' || value FROM secrets WHERE name NOT LIKE 'filler-%' ORDER BY id;
