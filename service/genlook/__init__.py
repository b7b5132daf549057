"""Typed async client for Genlook's Try-On API v1: models, errors, retries, hooks.

See docs/genlook-client.md.
"""

from service.genlook.client import (
    DEFAULT_BASE_URL,
    DEFAULT_LIMITS,
    DEFAULT_TIMEOUT,
    ENDPOINTS,
    Backoff,
    ClientHooks,
    Endpoint,
    GenlookClient,
    NoopHooks,
    Priority,
    classify_transport_error,
    encode_segment,
    should_retry,
)
from service.genlook.errors import *  # noqa: F403
from service.genlook.errors import __all__ as _errors_all
from service.genlook.models import *  # noqa: F403
from service.genlook.models import __all__ as _models_all

__all__ = [  # noqa: PLE0604
    "DEFAULT_BASE_URL",
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "ENDPOINTS",
    "Backoff",
    "ClientHooks",
    "Endpoint",
    "GenlookClient",
    "NoopHooks",
    "Priority",
    "classify_transport_error",
    "encode_segment",
    "should_retry",
    *_errors_all,
    *_models_all,
]
