"""Subcommands of ``bench-metrics``: one module each, ``add_parser`` + ``run``."""
