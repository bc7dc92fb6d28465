"""The aiosqlite internals the SQLite ingest round relies on: present in the installed version,
and a version that changed them is refused with a message naming it and what moved."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiosqlite.core import Connection

from trainyard.callbacks.aiosqlite_internals import (
    AiosqliteInternalsChanged,
    check_aiosqlite_internals,
)


def test_the_installed_aiosqlite_has_what_the_ingest_round_uses() -> None:
    check_aiosqlite_internals()


class _ConnectionOfAnotherVersion:
    def _execute(self, fn: Any) -> Any:  # no longer a coroutine, no *args
        return fn()


def test_an_aiosqlite_whose_internals_moved_is_refused_naming_each_change() -> None:
    with pytest.raises(AiosqliteInternalsChanged) as refused:
        check_aiosqlite_internals(cast("type[Connection]", _ConnectionOfAnotherVersion))

    message = str(refused.value)
    assert message.startswith("aiosqlite 0.")
    assert "Connection._execute is missing or no longer a coroutine function" in message
    assert "Connection._conn" in message
