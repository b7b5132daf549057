"""Dependencies shared by the handlers."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.params import Dependency

from emulator.models import Account
from emulator.runtime import Runtime

# Our own objects, not request data: nothing for Litestar to validate.
RuntimeDep = Annotated[Runtime, Dependency(skip_validation=True)]
AccountDep = Annotated[Account, Dependency(skip_validation=True)]


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def provide_runtime(request: Request[Any, Any, Any]) -> Runtime:
    return runtime_of(request)


async def provide_account(request: Request[Any, Any, Any]) -> Account:
    # The guard already rejected requests without a known key.
    return runtime_of(request).store.accounts[request.headers["x-api-key"]]


def base_url(request: Request[Any, Any, Any]) -> str:
    """Absolute URLs are built from the Host the client used, so they work through any port."""
    return str(request.base_url).rstrip("/")


def path_id(raw: str) -> str:
    """A `{x:path}` parameter: ids may contain '/', sent raw or as %2F."""
    return raw.removeprefix("/")
