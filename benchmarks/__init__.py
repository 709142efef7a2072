"""Throughput and latency harness: adk_sessions vs google-adk's session services vs a raw floor.

Run ``python -m benchmarks --help``; see ``benchmarks/README.md``.
"""
