"""No credential in a log (issue 19), checked over everything a test session wrote.

Test code tells the session each credential it mints or receives (access, refresh and ID
tokens, API keys, session cookies, stream tickets, callback tokens):

    remember_credential(key, what="API key")

At the end of the session (each xdist worker: its own tests, its own tmp dirs) every log-like
file under the session's base temp directory, and the captured output of every test, is
searched for each remembered value; a hit fails the session and names the file and the value's
first 8 characters, never the value.

The pytest hooks are in `plugin.py`; this module holds the state and the search.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Shorter values are not secrets worth the name, and would match by chance.
MIN_LENGTH = 16
MAX_FILE_BYTES = 50 * 1024 * 1024
SHOWN_CHARACTERS = 8
# Files that hold a credential on purpose: the CLI's credential store (0600, what `trainyard
# login` is for). The IdP's own log is excluded by path (`exclude_from_scan`, called by the
# OIDC harness): the IdP legitimately sees the tokens it issues.
EXCLUDED_NAMES = frozenset({"credentials.json"})
# Files searched: logs and text by name, and extension-less files (a process's stdout and
# stderr as tests and supervisors capture them, PID-less component logs).
LOG_SUFFIXES = frozenset({".log", ".txt", ".out", ".err"})


@dataclass(frozen=True)
class Leak:
    """A remembered credential found where it should not be."""

    where: str
    what: str
    shown: str  # its first SHOWN_CHARACTERS characters

    def describe(self) -> str:
        return f"{self.where}: {self.what} {self.shown}…"


@dataclass
class CredentialRegistry:
    """What one test session (one xdist worker) minted or received, and what it found."""

    values: dict[str, str] = field(default_factory=dict)  # value -> what it is
    excluded: set[Path] = field(default_factory=set)
    leaks: list[Leak] = field(default_factory=list)

    def remember(self, value: str, what: str) -> None:
        if len(value) >= MIN_LENGTH:
            self.values.setdefault(value, what)

    def search_text(self, where: str, text: str) -> None:
        """Record a leak for each remembered value in `text` (a test's captured output)."""
        self.leaks.extend(leaks_in(where, text.encode(errors="replace"), self.values))

    def search_tree(self, root: Path) -> None:
        """Record a leak for each remembered value in each log-like file under `root`."""
        if not self.values:
            return
        for path in log_files(root, self.excluded):
            try:
                data = path.read_bytes()
            except OSError:  # removed meanwhile, or unreadable: nothing a test wrote for us
                continue
            self.leaks.extend(leaks_in(str(path), data, self.values))


# One registry per running session, innermost last: a session run inside a test (pytester's
# inline runs) remembers into its own and does not leak into the outer one's.
_sessions: list[CredentialRegistry] = []


def remember_credential(value: str, what: str = "credential") -> None:
    """Tell the running test session that `value` is a credential: it must appear in no log
    the session produces. `what` names it in the failure ("API key", "access token"). Values
    shorter than 16 characters are ignored; outside a pytest session this does nothing."""
    if _sessions:
        _sessions[-1].remember(value, what)


def exclude_from_scan(path: Path) -> None:
    """A file that may hold credentials on purpose (the IdP's own log): not searched."""
    if _sessions:
        _sessions[-1].excluded.add(path.resolve())


def current_session() -> CredentialRegistry | None:
    return _sessions[-1] if _sessions else None


def begin_session() -> CredentialRegistry:
    registry = CredentialRegistry()
    _sessions.append(registry)
    return registry


def end_session(registry: CredentialRegistry) -> None:
    if registry in _sessions:
        _sessions.remove(registry)


def is_log_like(name: str) -> bool:
    if name in EXCLUDED_NAMES:
        return False
    suffixes = Path(name).suffixes
    # "api.log.1" (rotated) counts as a log; "x.tar.gz" does not count as extension-less.
    return not suffixes or any(suffix in LOG_SUFFIXES for suffix in suffixes)


def log_files(root: Path, excluded: Collection[Path]) -> Iterable[Path]:
    """Regular files under `root` (links not followed) that look like logs, < MAX_FILE_BYTES."""
    for folder, _, names in os.walk(root, followlinks=False):
        for name in names:
            if not is_log_like(name):
                continue
            path = Path(folder) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            # Sockets and FIFOs (a server's control pipe) would block or fail a read.
            if not stat.S_ISREG(info.st_mode) or info.st_size >= MAX_FILE_BYTES:
                continue
            if path.resolve() in excluded:
                continue
            yield path


def written_forms(value: str) -> set[bytes]:
    """`value` as a log may hold it: as it is, and inside a JSON string (JSON log lines),
    where `"`, `\\`, control and (ASCII-only JSON) non-ASCII characters are escaped."""
    return {
        value.encode(),
        json.dumps(value)[1:-1].encode(),
        json.dumps(value, ensure_ascii=False)[1:-1].encode(),
    }


def leaks_in(where: str, data: bytes, values: dict[str, str]) -> list[Leak]:
    return [
        Leak(where, what, value[:SHOWN_CHARACTERS])
        for value, what in values.items()
        if any(form in data for form in written_forms(value))
    ]
