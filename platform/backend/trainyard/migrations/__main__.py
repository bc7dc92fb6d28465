"""`python -m trainyard.migrations <alembic command>` against TRAINYARD_DATABASE_URL."""

from __future__ import annotations

import sys

from alembic.config import CommandLine

from trainyard.migrations import alembic_config


def main(argv: list[str] | None = None) -> None:
    cli = CommandLine(prog="python -m trainyard.migrations")
    options = cli.parser.parse_args(argv if argv is not None else sys.argv[1:])
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    cli.run_cmd(alembic_config(), options)


if __name__ == "__main__":
    main()
