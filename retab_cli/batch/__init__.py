"""Batch: many documents to chunk files, resumable and sharded (docs/design.md §10).

The parts here are engines: walking sources, sharding, hashing, the cost estimate, the
SQLite journal and the report. They import neither typer nor rich; the commands wire
them to the terminal.
"""
