"""Benchmarks: each prints our figures next to a baseline measured in the same run.

Run as `uv run python -m bench.<name>`; see docs/benchmarks.md.
"""
