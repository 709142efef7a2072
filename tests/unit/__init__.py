"""Tests that need no database server and no backend fixture: pure logic, static checks."""
