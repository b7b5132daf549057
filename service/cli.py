"""The `tryon-gateway` command.

Each subcommand lives in the module that owns its concern; this file only wires argparse to
them, so `--help` lists everything the project can run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]

# Seconds an idle client connection is kept open by `serve` (see there).
KEEP_ALIVE_SECONDS = 75


def _add_emulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "emulator",
        help="run the local Genlook emulator (the default upstream when no Genlook key is set)",
        description="Serve a faithful emulator of Genlook's Try-On API under /tryon/v1, "
        "with a control API under /_emulator/.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument(
        "--api-key",
        default=None,
        help="the account's API key (default: a demo key, printed at start)",
    )
    p.add_argument("--credits", type=int, default=1000, help="starting credit balance")
    p.add_argument("--rate-limit", type=int, default=100, help="requests per minute per account")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time factor: 10 makes generations 10x faster and the emulator's clock 10x faster",
    )
    p.add_argument(
        "--result-url-lifetime",
        type=float,
        default=3600.0,
        help="emulator seconds a signed result/preview URL loads for (default: one hour)",
    )

    def run(args: argparse.Namespace) -> int:
        from emulator.server import serve

        serve(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            credits=args.credits,
            rate_limit=args.rate_limit,
            speed=args.speed,
            result_url_lifetime=args.result_url_lifetime,
        )
        return 0

    p.set_defaults(handler=run)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the gateway (HTTP API) in production")
    p.add_argument("--host", default=None, help="default: GATEWAY_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: GATEWAY_PORT or 8080")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")

    def run(args: argparse.Namespace) -> int:
        import uvicorn

        from service.settings import Settings

        gw = Settings.from_env().gateway
        uvicorn.run(
            "service.app:create_asgi",
            factory=True,
            host=args.host or gw.host,
            port=args.port or gw.port,
            workers=args.workers,
            log_level="warning",
            # uvicorn would rewrite the client address from X-Forwarded-For for any peer in
            # `forwarded_allow_ips` (127.0.0.1 by default), whatever GATEWAY_TRUSTED_PROXIES
            # says. The gateway alone reads the header (service/auth.py `client_ip`), counting
            # only the proxies it was told about.
            proxy_headers=False,
            # `server: uvicorn` tells a scanner what to try; nothing a client needs.
            server_header=False,
            # Longer than the idle timeout of any client or load balancer in front (httpx 5 s,
            # AWS ALB 60 s): the client drops an idle connection first, so it never sends a
            # request on one the server is closing at that instant (uvicorn's 5 s equals
            # httpx's, a race that fails a request now and then).
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        return 0

    p.set_defaults(handler=run)


def _add_worker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="run a worker: try-ons, photo uploads, the sweeper")

    def run(args: argparse.Namespace) -> int:
        import runpy

        # By module path: the worker package builds on this one, never the other way round.
        runpy.run_module("workers", run_name="__main__")
        return 0

    p.set_defaults(handler=run)


def _add_dev(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "dev",
        help="start everything on this machine: Redis (if none), emulator, gateway, worker",
    )
    p.add_argument("--port", type=int, default=8080, help="the gateway's port")
    p.add_argument("--emulator-port", type=int, default=8081)
    p.add_argument("--speed", type=float, default=1.0, help="emulator time factor")

    def run(args: argparse.Namespace) -> int:
        from service.devstack import run_dev

        return run_dev(port=args.port, emulator_port=args.emulator_port, speed=args.speed)

    p.set_defaults(handler=run)


def _add_ops(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # --url/--token go on every ops command, so they may follow it (`ops status --url ...`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway")
    common.add_argument("--token", default=None, help="admin token (default: OPS_ADMIN_TOKEN)")
    p = sub.add_parser(
        "ops",
        help="see and steer the queue through the ops API (status, pause, retry, resend, ...)",
        description="Talk to a gateway's ops API (/ops/api) with an admin token "
        "(OPS_ADMIN_TOKENS on the gateway): one command per route. See docs/ops.md.",
    )
    cmds = p.add_subparsers(title="ops commands", metavar="OPS_COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        child = cmds.add_parser(name, help=help_text, parents=[common])
        child.set_defaults(handler=run, ops_command=name)
        return child

    def run(args: argparse.Namespace) -> int:
        import os

        from service.cli_ops import run_ops_command

        token = args.token or os.environ.get("OPS_ADMIN_TOKEN", "")
        if not token:
            print("an admin token is needed: --token or OPS_ADMIN_TOKEN", file=sys.stderr)
            return 2
        return run_ops_command(args.url, token, args.ops_command, vars(args))

    def usage(_: argparse.Namespace) -> int:
        p.print_help()
        return 2

    def failed_list(name: str, help_text: str) -> None:
        # The API lists only failed ones; `status` is its one accepted filter.
        listing = command(name, help_text)
        listing.add_argument("--limit", type=int, default=50)
        listing.set_defaults(status="failed")

    p.set_defaults(handler=usage)
    command("status", "pauses, queue counts, try-ons, deliveries, live workers")
    command("jobs", "ready/deferred counts and the oldest ready jobs").add_argument(
        "--limit", type=int, default=10
    )
    pause = command("pause", "pause intake (503 on new try-ons) or processing (no new jobs)")
    pause.add_argument("what", choices=["intake", "processing"])
    pause.add_argument("--reason", default=None)
    pause.add_argument("--seconds", type=float, default=None, help="lift by itself after this")
    command("resume", "resume intake or processing").add_argument(
        "what", choices=["intake", "processing"]
    )
    failed_list("tryons", "recently failed try-ons and whether a retry is safe")
    command("tryon", "one try-on's whole stored record").add_argument("tryon_id")
    command(
        "retry", "send a failed try-on again (refused if it could spend a second credit)"
    ).add_argument("tryon_id")
    command("discard", "drop a try-on from the failed list (it stays failed)").add_argument(
        "tryon_id"
    )
    failed_list("deliveries", "dead webhook deliveries, newest first")
    command("delivery", "one delivery with its attempts").add_argument("delivery_id")
    command("resend", "send a delivery's event again, with the same webhook-id").add_argument(
        "delivery_id"
    )
    report = command("usage", "try-ons and credits per day, app, account, user or product")
    report.add_argument(
        "--from", dest="from", help="first UTC day, YYYY-MM-DD (default: 6 days ago)"
    )
    report.add_argument("--to", help="last UTC day, YYYY-MM-DD (default: today)")
    report.add_argument(
        "--group-by", dest="groupBy", choices=["day", "app", "account", "user", "product"]
    )
    report.add_argument("--app", help="one app only (needed to group by user or product)")
    report.add_argument("--format", choices=["json", "csv"], help="csv: the rows as CSV")


def _add_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from service.access import admin

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document")
    p = sub.add_parser(
        "keys",
        help="apps and their keys: create, list, rotate, revoke, policies, token signing keys",
        description="Manage apps in Redis (REDIS_URL): secret keys for servers, publishable "
        "keys for browsers, their limits, and the public keys that verify offline end-user "
        "tokens. Keys are shown once. See docs/browser.md.",
    )
    cmds = p.add_subparsers(title="keys commands", metavar="KEYS_COMMAND")

    def command(name: str, help_text: str, fn: object) -> argparse.ArgumentParser:
        child = cmds.add_parser(name, help=help_text, parents=[common])
        child.set_defaults(handler=admin.run_keys_command, keys_fn=fn)
        return child

    def usage(_: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(handler=usage)
    create = command("create", "a new app with a secret and a publishable key", admin.create)
    create.add_argument("name")
    create.add_argument("--id", default=None, help="the app id (default: generated)")
    admin.add_policy_options(create)
    command("list", "apps, their policies and key hints", admin.list_apps)
    rotate = command("rotate", "a new key; the old ones work for --grace seconds", admin.rotate)
    rotate.add_argument("app")
    rotate.add_argument("kind", choices=["secret", "publishable"])
    rotate.add_argument("--grace", type=float, default=86_400.0)
    revoke = command("revoke", "revoke one key at once", admin.revoke)
    revoke.add_argument("app")
    revoke.add_argument("key_id")
    policy = command("policy", "change an app's origins and limits", admin.set_policy)
    policy.add_argument("app")
    admin.add_policy_options(policy)
    signing = command(
        "signing-key",
        "register an ES256 public key for offline tokens (or generate a pair)",
        admin.signing_key,
    )
    signing.add_argument("app")
    signing.add_argument("--public-key", default=None, help="PEM file (default: generate)")
    command(
        "delete", "delete an app, its keys and configuration; its id is never reused", admin.delete
    ).add_argument("app")


def _add_accounts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from service.accounts.commands import add_commands

    add_commands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tryon-gateway",
        description="Self-hosted gateway in front of Genlook's Virtual Try-On API.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_dev(sub)
    _add_serve(sub)
    _add_worker(sub)
    _add_emulator(sub)
    _add_ops(sub)
    _add_keys(sub)
    _add_accounts(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
