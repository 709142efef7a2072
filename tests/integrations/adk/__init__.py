"""Tests of the google-adk integration (adk_sessions.adk, import-adk)."""
