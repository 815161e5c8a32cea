"""`python -m rankkit.cli` runs the rankkit command."""

from rankkit.cli.app import main

main()
