"""The ``bench-metrics`` command line (SPEC §9): parsing and dispatch in
:mod:`exporter.cli.main` (the console script's ``main``), option checks, one module
per subcommand under :mod:`exporter.cli.commands`, errors, signals, the output
directory and the parent watch. Importing this package imports nothing else.
"""
