"""The fault suite: google-adk's part is collected only where google-adk is installed."""

from __future__ import annotations

from ..conftest import _has_google_adk

collect_ignore = [] if _has_google_adk() else ["test_adk_faults.py"]
