-- Version 1 -> 2: scopes are rooted. Version 1 stored a scope as given, so a
-- record saved with scope 'a/b' was out of reach of every scope filter (they
-- are rooted: '/a/b'). Run by both backends, in the open's transaction, when
-- the file's schema_version is 1.

UPDATE memories SET scope = '/' || scope WHERE substr(scope, 1, 1) <> '/';
UPDATE store_meta SET value = 2 WHERE key = 'schema_version';
