-- pg_kalam 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_kalam UPDATE).
-- 0.2.0 changed the library (pushdown of scalar subqueries, numeric averages, sorted joins,
-- release packages), not the SQL objects: the functions, the foreign data wrapper, the access
-- method and the event triggers of 0.1.0 are those of 0.2.0, with the same C symbols.
-- tests/e2e/versions.rs checks that an updated database has the catalog of a fresh install.
\echo Use "ALTER EXTENSION pg_kalam UPDATE" to load this file. \quit
