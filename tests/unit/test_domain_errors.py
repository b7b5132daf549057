"""Every kind of domain refusal answers with a status, decided in one table."""

from __future__ import annotations

import ast
from pathlib import Path

from service import domain_errors
from service.domain_errors import DomainError, LimitReached
from service.errors import DOMAIN_STATUS, http_status


def _kinds(base: type[DomainError]) -> list[type[DomainError]]:
    out: list[type[DomainError]] = []
    for kind in base.__subclasses__():
        out += [kind, *_kinds(kind)]
    return out


def test_every_kind_has_a_status() -> None:
    declared = [k for k in _kinds(DomainError) if k.__module__ == domain_errors.__name__]
    declared.remove(LimitReached)  # a grouping to catch; one raises its two kinds
    assert len(declared) >= 9
    for kind in declared:
        assert http_status(kind("CODE", "message")) is not None, kind.__name__


def test_a_bare_domain_error_has_no_status() -> None:
    # Raised by mistake, it is answered as a 500 INTERNAL_ERROR, not a guessed 4xx.
    assert http_status(DomainError("CODE", "message")) is None
    assert DomainError not in DOMAIN_STATUS


def test_a_subclass_answers_as_its_kind() -> None:
    class ProductGone(domain_errors.NotFound):
        pass

    assert http_status(ProductGone("PRODUCT_GONE", "gone")) == 404
    assert http_status(domain_errors.RateLimited("RATE_LIMITED", "slow down")) == 429


def test_no_api_error_below_the_api_layer() -> None:
    """Only the HTTP layer (service/api/, service/errors.py) builds an ApiError; the domain
    raises domain errors, mapped to statuses in one table."""
    root = Path(__file__).resolve().parents[2] / "service"
    allowed = {root / "errors.py", root / "api"}
    users = []
    for path in sorted(root.rglob("*.py")):
        if path in allowed or any(parent in allowed for parent in path.parents):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "service.errors"
                and any(alias.name == "ApiError" for alias in node.names)
            ):
                users.append(str(path.relative_to(root.parent)))
    assert users == []
