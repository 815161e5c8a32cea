"""The `rankkit` command line (installed as the package rankkit.cli)."""
