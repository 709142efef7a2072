"""Tests that run against the real backends (SQLite files, PostgreSQL, PgBouncer, Citus)."""
