"""Handlers of the Genlook surface under /tryon/v1, one module per resource.

Each handler names its endpoint in `opt["endpoint"]`; the guard middleware counts, limits and
injects faults by that name.
"""
