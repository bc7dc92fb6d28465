"""The attempt's output dir (``TRAINYARD_OUTPUT_DIR``) as every trainer lays it out, and the
environment a framework is imported into.

* ``<output>/run/`` (`run_dir`): the run the trainer reports (weights or checkpoints,
  ``results.csv``); what ``done``'s ``run_dir`` artifact names.
* ``<output>/.trainer/`` (`trainer_dir`): the trainer's private files — dataset mirror,
  framework caches and settings, DDP hand-over files.

`FrameworkEnvironment` is what a trainer sets before it imports its framework, which reads
these variables at import time: everything offline, every cache and settings file inside
``.trainer/`` (nothing written to the home folder, nothing downloaded), hub tokens removed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path


def trainer_dir(output_dir: Path) -> Path:
    """The trainer's private folder inside the output dir."""
    return output_dir / ".trainer"


def run_dir(output_dir: Path) -> Path:
    """Where this attempt's run is written."""
    return output_dir / "run"


@dataclass(frozen=True)
class FrameworkEnvironment:
    """Variables a framework reads at import time. Values may name the private folder as
    ``{private}``: ``set`` always wins, ``default`` only where the variable is unset (an
    operator's choice stays), ``remove`` is dropped (credentials the trainer must not use)."""

    set: Mapping[str, str] = field(default_factory=dict)
    default: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    def prepare(self, output_dir: Path, environ: MutableMapping[str, str] | None = None) -> Path:
        """Create the private folder and set the variables in ``environ`` (default: this
        process's); returns the private folder."""
        env = os.environ if environ is None else environ
        private = trainer_dir(output_dir)
        private.mkdir(parents=True, exist_ok=True)
        for name, value in self.set.items():
            env[name] = value.format(private=private)
        for name, value in self.default.items():
            env.setdefault(name, value.format(private=private))
        for name in self.remove:
            env.pop(name, None)
        return private
