"""One meaning per error code: a client that branches on `code` never meets two statuses."""

from __future__ import annotations

import importlib
import pkgutil

import trainyard
from trainyard.core.errors import TrainyardError


def _every_error_class() -> set[type[TrainyardError]]:
    for module in pkgutil.walk_packages(trainyard.__path__, "trainyard."):
        if ".migrations." not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: set[type[TrainyardError]] = set()
    pending = [TrainyardError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_each_error_code_has_one_status() -> None:
    statuses: dict[str, set[int]] = {}
    for cls in _every_error_class():
        statuses.setdefault(cls.code, set()).add(cls.status_code)

    assert {code: found for code, found in statuses.items() if len(found) > 1} == {}
    assert statuses["stale_attempt"] == {403}
    assert statuses["attempt_superseded"] == {409}
