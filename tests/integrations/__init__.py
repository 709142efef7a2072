"""Tests of the integrations: the google-adk adapter, the HTTP service, the command line."""
