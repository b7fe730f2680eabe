"""The ``cnnzoo`` subcommands, one module per group, each with ``register(subparsers)``.

A command module parses nothing itself beyond its options: it turns them into a call of the
library's plain functions (engine, data, inspect, …) and prints the result, human-readable on stderr
or a table on stdout, and with ``--json`` one JSON document on stdout. Importing a command module
imports no torch: ``cnnzoo --help`` and the NumPy-only ``cnnzoo scratch`` stay light.
"""
