"""`tryon-gateway accounts ...`: upstream accounts and apps' pools, straight in Redis (REDIS_URL).

A Genlook key is read from standard input, never from an argument (it would sit in the shell
history and the process list), and never printed: listings show its first characters only.
`--json` prints one JSON document, for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from service.accounts import admin
from service.accounts.crypto import KeyBox, new_master_key
from service.accounts.models import AccountOut
from service.accounts.registry import AccountRegistry
from service.domain_errors import DomainError
from service.keys import Keys
from service.redis_client import connect_redis
from service.settings import Settings

Command = Callable[[AccountRegistry, argparse.Namespace], Awaitable[Any]]


def read_key(prompt: str = "Genlook API key: ") -> str:
    """The key from standard input: typed without echo on a terminal, else its first line."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().strip()


def run_accounts_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    command: Command = args.accounts_fn

    async def main() -> Any:
        redis = connect_redis(settings)
        try:
            registry = AccountRegistry(
                redis,
                Keys(settings.redis.prefix),
                settings.genlook,
                KeyBox(settings.gateway.master_key),
            )
            return await command(registry, args)
        finally:
            await redis.aclose()

    try:
        result = asyncio.run(main())
    except DomainError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        if exc.details:
            for field in exc.details:
                print(f"  {field.path}: {field.message}", file=sys.stderr)
        return 2
    _print(result, as_json=args.json)
    return 0


def _print(result: Any, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
        return
    rows = result if isinstance(result, list) else [result]
    for row in rows:
        if isinstance(row, AccountOut):
            state = (
                "disabled"
                if row.disabled
                else "available"
                if row.available
                else f"out: {row.unavailable_reason}"
            )
            balance = "?" if row.balance is None else str(row.balance)
            print(
                f"{row.id}\t{state}\tbalance {balance}\t{row.rate_limit}/window\t"
                f"{row.key_hint}\t{row.base_url}"
            )
        else:
            for key, value in row.items():
                text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
                print(f"{key}: {text}")


async def create(registry: AccountRegistry, args: argparse.Namespace) -> AccountOut:
    return await admin.create(
        registry, args.id, read_key(), base_url=args.base_url, rate_limit=args.rate_limit
    )


async def list_accounts(registry: AccountRegistry, args: argparse.Namespace) -> list[AccountOut]:
    return await admin.list_accounts(registry)


async def update(registry: AccountRegistry, args: argparse.Namespace) -> AccountOut:
    return await admin.update(
        registry,
        args.id,
        api_key=read_key("New Genlook API key: ") if args.new_key else None,
        base_url=args.base_url,
        rate_limit=args.rate_limit,
    )


async def disable(registry: AccountRegistry, args: argparse.Namespace) -> AccountOut:
    return await admin.update(registry, args.id, disabled=True)


async def enable(registry: AccountRegistry, args: argparse.Namespace) -> AccountOut:
    return await admin.update(registry, args.id, disabled=False)


async def delete(registry: AccountRegistry, args: argparse.Namespace) -> dict[str, str]:
    await registry.delete(args.id)
    return {"deleted": args.id}


async def pool(registry: AccountRegistry, args: argparse.Namespace) -> dict[str, Any]:
    if args.accounts or args.clear:
        accounts = await registry.set_pool(args.app, [] if args.clear else args.accounts)
    else:
        accounts = await registry.pool(args.app)
    return {"app": args.app, "accounts": accounts}


async def rotate_master_key(registry: AccountRegistry, args: argparse.Namespace) -> dict[str, int]:
    return {"resealed": await registry.rotate_master_key()}


async def master_key(registry: AccountRegistry, args: argparse.Namespace) -> dict[str, str]:
    return {"masterKey": new_master_key()}


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document")
    p = sub.add_parser(
        "accounts",
        help="upstream Genlook accounts and apps' pools: create, list, update, disable, delete",
        description="Manage the Genlook accounts the gateway sends try-ons through (Redis, "
        "REDIS_URL). Keys are read from standard input, encrypted with GATEWAY_MASTER_KEY and "
        "never shown again. See docs/accounts.md.",
    )
    cmds = p.add_subparsers(title="accounts commands", metavar="ACCOUNTS_COMMAND")

    def command(name: str, help_text: str, fn: Command) -> argparse.ArgumentParser:
        child = cmds.add_parser(name, help=help_text, parents=[common])
        child.set_defaults(handler=run_accounts_command, accounts_fn=fn)
        return child

    def usage(_: argparse.Namespace) -> int:
        p.print_help()
        return 2

    def limits(child: argparse.ArgumentParser) -> None:
        child.add_argument("--base-url", default=None, help="default: GENLOOK_BASE_URL's")
        child.add_argument(
            "--rate-limit", type=int, default=None, help="requests per window (Genlook: 100/min)"
        )

    p.set_defaults(handler=usage)
    create_cmd = command("create", "a new account; its key is read from standard input", create)
    create_cmd.add_argument("id")
    limits(create_cmd)
    command("list", "every account, its state and last balance (never its key)", list_accounts)
    update_cmd = command("update", "change an account's URL, rate limit or key", update)
    update_cmd.add_argument("id")
    limits(update_cmd)
    update_cmd.add_argument(
        "--new-key", action="store_true", help="read a new key from standard input"
    )
    command("disable", "take an account out of every pool", disable).add_argument("id")
    command("enable", "put a disabled account back", enable).add_argument("id")
    command("delete", "delete an account (it leaves every pool)", delete).add_argument("id")
    pool_cmd = command("pool", "show or set an app's ordered pool of accounts", pool)
    pool_cmd.add_argument("app")
    pool_cmd.add_argument("accounts", nargs="*", help="account ids, first preferred")
    pool_cmd.add_argument("--clear", action="store_true", help="back to the default account")
    command(
        "rotate-master-key",
        "encrypt every stored key again with the first GATEWAY_MASTER_KEY",
        rotate_master_key,
    )
    command("master-key", "print a new master key for GATEWAY_MASTER_KEY", master_key)
