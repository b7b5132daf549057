"""The environment variables `Settings.from_env` reads, asked of settings itself."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from service.settings import Settings


class _AskedFor(Mapping[str, str]):
    """An empty environment that remembers every name it was asked about."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.names.add(name)
        return False

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def setting_names() -> set[str]:
    """Every variable settings reads (prefix + field name, however `from_env` derives it)."""
    env = _AskedFor()
    Settings.from_env(env)
    return env.names


def setting_prefixes() -> set[str]:
    """`REDIS_`, `GENLOOK_`, ...: a name with one of these belongs to settings."""
    return {name.split("_", 1)[0] + "_" for name in setting_names()}
