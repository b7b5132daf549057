"""`GET /v1/usage` (an app's own figures, secret key) and `GET /ops/api/usage` (every app and
account, admin token; `?format=csv` for a spreadsheet). docs/usage.md describes the figures."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.params import QueryParameter

from service.api.deps import CTX, Ctx
from service.api.openapi import ADMIN_ONLY, AUTHENTICATED, SECRET_ONLY, errors
from service.api.ops import OPS_CTX, OpsCtx
from service.usage.report import GroupBy, OpsGroupBy, UsageReport, UsageRow, span

From = Annotated[
    str | None,
    QueryParameter(
        name="from",
        description="First UTC day (YYYY-MM-DD); default: six days before `to`.",
    ),
]
To = Annotated[str | None, QueryParameter(description="Last UTC day (YYYY-MM-DD); default: today.")]
_CSV_COLUMNS = [f for f in UsageRow.__struct_encode_fields__]


@dataclass
class _JsonOrCsv(Operation):
    """The ops report's 200 in either form (`format=json` or `format=csv`)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.content = {
                "application/json": OpenAPIMediaType(
                    schema=Reference(ref="#/components/schemas/UsageReport")
                ),
                "text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
            }


class UsageController(Controller):
    tags = ["usage"]
    dependencies = CTX
    security = SECRET_ONLY

    @get("/v1/usage", responses=errors(*AUTHENTICATED))
    async def usage(
        self,
        ctx: NamedDependency[Ctx],
        from_: From = None,
        to: To = None,
        group_by: Annotated[GroupBy, QueryParameter(name="groupBy")] = "day",
    ) -> UsageReport:
        """This app's try-ons and credits per UTC day, end user or product, over at most
        USAGE_RETENTION_DAYS days."""
        res = ctx.res
        days = span(from_, to, res.usage.retention_days, time.time())
        return await res.usage.report(days, group_by, app=ctx.principal.app)


class OpsUsageController(Controller):
    path = "/ops/api"
    tags = ["ops"]
    dependencies = OPS_CTX
    security = ADMIN_ONLY

    @get("/usage", responses=errors(*AUTHENTICATED), operation_class=_JsonOrCsv)
    async def usage(
        self,
        *,
        ctx: NamedDependency[OpsCtx],
        from_: From = None,
        to: To = None,
        group_by: Annotated[OpsGroupBy, QueryParameter(name="groupBy")] = "day",
        app: Annotated[str | None, QueryParameter(description="One app only.")] = None,
        format: Annotated[Literal["json", "csv"], QueryParameter()] = "json",
    ) -> Response[UsageReport | bytes]:
        """Try-ons and credits of every app and account: by day (a row per day, account and
        app), app, account, or one app's users or products (`app` needed). `format=csv`: the
        rows as CSV, one column per field."""
        res = ctx.res
        days = span(from_, to, res.usage.retention_days, time.time())
        report = await res.usage.report(days, group_by, app=app)
        if format == "json":
            return Response(report)
        name = f"usage-{report.from_}-{report.to}-{group_by}.csv"
        return Response(
            to_csv(report.rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


def _cell(value: object) -> object:
    # An id chosen by an app's users (externalUserId, a product id) starting like a formula
    # would run as one when the file is opened in a spreadsheet: quote it (OWASP's advice).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: list[UsageRow]) -> bytes:
    """The rows, one column per field of `UsageRow` (empty where a grouping has no value)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_CSV_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in msgspec.to_builtins(row).items()})
    return out.getvalue().encode()
