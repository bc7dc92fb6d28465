"""`python -m trainyard.cli`: the `trainyard` command."""

from trainyard.cli.app import main

main()
