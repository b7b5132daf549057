"""The ops usage report as CSV: one column per field, and ids that a spreadsheet would run as a
formula quoted (an app's users choose their externalUserId)."""

from __future__ import annotations

import csv
import io

from service.api.usage import to_csv
from service.usage.report import UsageRow


def _row(user: str | None) -> UsageRow:
    return UsageRow(user_id=user, accepted=2, completed=1, failed=1, canceled=0, credits=1)


def test_columns_and_empty_cells() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv([_row("u1"), _row(None)]).decode())))
    assert list(rows[0]) == [
        "day", "account", "app", "userId", "productId",
        "accepted", "completed", "failed", "canceled", "credits",
    ]  # fmt: skip
    assert (rows[0]["userId"], rows[0]["day"], rows[0]["credits"]) == ("u1", "", "1")
    assert rows[1]["userId"] == ""


def test_an_id_that_looks_like_a_formula_is_quoted() -> None:
    for hostile in ('=HYPERLINK("http://x")', "+1", "-1", "@SUM(A1)"):
        (row,) = csv.DictReader(io.StringIO(to_csv([_row(hostile)]).decode()))
        assert row["userId"] == "'" + hostile
