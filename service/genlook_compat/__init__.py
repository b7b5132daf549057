"""Genlook's v1 API as the gateway serves it at `/tryon/v1` (docs/genlook-compat.md): the
mapping between Genlook's shapes and the gateway's own try-ons, photos and catalog. No second
pipeline: a try-on started here is accepted by `TryOnIntake.accept` like any other."""
