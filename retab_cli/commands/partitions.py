"""`retab partitions ...`: the sub-app that gathers the partition commands."""

from __future__ import annotations

import typer

from retab_cli.commands import batch, cancel, create, delete, get, listing, report, split, watch

app = typer.Typer(
    help="Create, watch, inspect, cancel and delete partition runs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.command("create")(create.create)
app.command("get")(get.get)
app.command("list")(listing.list_partitions)
app.command("watch")(watch.watch)
app.command("wait", help="Alias of 'watch'.", hidden=True)(watch.watch)
app.command("cancel")(cancel.cancel)
app.command("delete")(delete.delete)
app.command("split")(split.split)
app.command("batch")(batch.batch)
app.command("report")(report.report)
