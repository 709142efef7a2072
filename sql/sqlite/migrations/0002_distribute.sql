-- PostgreSQL distributes the tables over a Citus cluster in this migration (see
-- sql/postgres/migrations/0002_distribute.sql). SQLite has nothing to distribute; the one
-- statement keeps the versions of both dialects in step and changes nothing.
SELECT 1;
