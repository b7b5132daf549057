"""Genlook's reserved id prefix: externalIds starting with it are made by the server."""

from __future__ import annotations

ANON_PREFIX = "_anon_"
