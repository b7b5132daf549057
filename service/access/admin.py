"""`tryon-gateway keys ...`: apps, their keys and policies, straight in Redis (REDIS_URL).

Keys are printed once, when made; afterwards only their hints are shown. `--json` prints one
JSON document, for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from service.access.models import Policy
from service.access.registry import AppRegistry, UnknownApp
from service.keys import Keys
from service.redis_client import connect_redis
from service.settings import Settings

_POLICY_FIELDS = {
    "daily_cap": "daily_credit_cap",
    "user_rate": "user_rate_per_minute",
    "app_rate": "app_rate_per_minute",
    "ip_rate": "ip_rate_per_minute",
    "upload_rate": "uploads_per_minute",
    "anonymous_per_day": "anonymous_tryons_per_ip_per_day",
    "browser_deadline": "browser_deadline_seconds",
    "lane_weight": "lane_weight",
}


def add_policy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--origin",
        action="append",
        dest="origins",
        default=None,
        help="an origin whose pages may use the publishable key (repeat; replaces the list)",
    )
    p.add_argument("--daily-cap", type=_cap, default=None, help="try-ons a UTC day, or 'none'")
    p.add_argument("--user-rate", type=int, default=None, help="browser requests/min per user")
    p.add_argument("--app-rate", type=int, default=None, help="browser requests/min per app")
    p.add_argument("--ip-rate", type=int, default=None, help="browser requests/min per IP")
    p.add_argument("--upload-rate", type=int, default=None, help="photo uploads/min per user")
    p.add_argument(
        "--anonymous",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="allow browsers without an end-user token (limited per IP)",
    )
    p.add_argument("--anonymous-per-day", type=int, default=None, help="anonymous try-ons/IP/day")
    p.add_argument(
        "--browser-deadline",
        type=_deadline,
        default=None,
        help="seconds a browser's try-on may wait to be sent upstream unless its request sets "
        "deadlineSeconds (at least 1), or 'none'",
    )
    p.add_argument(
        "--result-cache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="complete identical try-ons from a stored result, spending no credit (default on)",
    )
    p.add_argument(
        "--lane-weight",
        type=int,
        choices=range(1, 1001),
        metavar="1-1000",
        default=None,
        help="the app's share of the upstream budget beside other apps in the same lane",
    )


def _cap(value: str) -> int:
    return -1 if value.lower() == "none" else int(value)


def _deadline(value: str) -> float:
    if value.lower() == "none":
        return -1
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds >= 1):
        raise argparse.ArgumentTypeError("at least 1 second, or 'none'")
    return seconds


def _policy(base: Policy, args: argparse.Namespace) -> Policy:
    changes: dict[str, Any] = {}
    if args.origins is not None:
        changes["allowed_origins"] = tuple(o.rstrip("/") for o in args.origins)
    for option, field in _POLICY_FIELDS.items():
        value = getattr(args, option)
        if value is not None:
            changes[field] = None if value == -1 else value
    if args.anonymous is not None:
        changes["anonymous"] = args.anonymous
    if args.result_cache is not None:
        changes["result_cache"] = args.result_cache
    return msgspec.structs.replace(base, **changes)


def run_keys_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def main() -> int:
        redis = connect_redis(settings)
        try:
            registry = AppRegistry(redis, Keys(settings.redis.prefix))
            command: Callable[[AppRegistry, argparse.Namespace], Awaitable[Any]] = args.keys_fn
            result = await command(registry, args)
        except (UnknownApp, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            await redis.aclose()
        _print(result, as_json=args.json)
        return 0

    return asyncio.run(main())


def _print(result: Any, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
        return
    for key, value in result.items():
        print(
            f"{key}: {msgspec.json.encode(value).decode() if not isinstance(value, str) else value}"
        )


async def create(registry: AppRegistry, args: argparse.Namespace) -> dict[str, Any]:
    app, secret, publishable = await registry.create_app(
        args.name, _policy(Policy(), args), app_id=args.id
    )
    return {"app": app, "secretKey": secret, "publishableKey": publishable}


async def list_apps(registry: AppRegistry, args: argparse.Namespace) -> dict[str, Any]:
    apps = []
    for app in await registry.all_apps():
        keys = await registry.keys_of(app.id)
        signing = await registry.signing_keys(app.id)
        apps.append({"app": app, "keys": keys, "signingKeys": [s.kid for s in signing]})
    return {"apps": apps}


async def rotate(registry: AppRegistry, args: argparse.Namespace) -> dict[str, Any]:
    info, key = await registry.rotate(args.app, args.kind, grace=args.grace)
    return {"key": info, "newKey": key, "oldKeysValidForSeconds": args.grace}


async def revoke(registry: AppRegistry, args: argparse.Namespace) -> dict[str, Any]:
    if not await registry.revoke(args.app, args.key_id):
        raise ValueError(f"no key {args.key_id!r} in app {args.app!r}")
    return {"revoked": args.key_id}


async def set_policy(registry: AppRegistry, args: argparse.Namespace) -> dict[str, Any]:
    app = await registry.get(args.app)
    if app is None:
        raise UnknownApp(args.app)
    return {"app": await registry.set_policy(app.id, _policy(app.policy, args))}


async def signing_key(registry: AppRegistry, args: argparse.Namespace) -> dict[str, Any]:
    public = await asyncio.to_thread(Path(args.public_key).read_text) if args.public_key else None
    key, private = await registry.add_signing_key(args.app, public)
    out: dict[str, Any] = {"kid": key.kid, "publicKey": key.public_pem}
    if private is not None:
        out["privateKey"] = private
    return out


async def delete(registry: AppRegistry, args: argparse.Namespace) -> dict[str, Any]:
    if not await registry.delete_app(args.app):
        raise UnknownApp(args.app)
    return {"deleted": args.app}
