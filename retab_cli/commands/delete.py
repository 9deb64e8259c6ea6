"""`retab partitions delete ID... | -`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import (
    Env,
    FieldsOpt,
    JsonOpt,
    OutputOpt,
    QuietOpt,
    bulk,
    confirm_destructive,
    one_id,
    partial_on_broken_pipe,
    read_ids,
    report_partial,
)
from retab_cli.recent import complete_ids

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="Show what would be sent; send nothing.")]


def delete(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(
        metavar="ID", help="Partition ids, or - to read them from stdin.", show_default=False,
        autocompletion=complete_ids)],
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Delete partition runs for good (asks first on a terminal; --yes otherwise)."""
    env = Env(ctx, output=output, json=json, quiet=quiet, fields=fields)
    try:
        wanted = read_ids(ids)
        if dry_run:
            for partition_id in wanted:
                env.renderer.line(f"DELETE /v1/partitions/{partition_id}")
            env.renderer.info(f"dry run: would delete {len(wanted)} partition(s); "
                              "nothing sent")
            raise typer.Exit(0)
        confirm_destructive(env, f"Delete {len(wanted)} partition(s) for good?", yes,
                            declined="nothing deleted")
    except errors.RetabError as exc:
        raise env.fail(exc) from None
    done: list[str] = []

    async def main() -> int:
        async with env.client() as client:
            async def remove(partition_id: str) -> dict[str, Any]:
                result = await client.delete(partition_id)
                already = bool(result.extra.get("already_deleted"))
                return {"id": partition_id, "deleted": True, "already_deleted": already}

            tally = await bulk(env, "deleted", wanted, remove, lambda row: _show(env, row), done)
        if env.renderer.mode == "json" and tally.values:
            env.renderer.json_result(tally.values, single=one_id(ids))
        return tally.code

    def on_interrupt(code: int) -> None:
        report_partial(env, "deleted", done, wanted, interrupted=True)

    env.run(main, on_interrupt=on_interrupt,
            on_broken_pipe=partial_on_broken_pipe(env, "deleted", done, wanted))


def _show(env: Env, row: dict[str, Any]) -> None:
    mode = env.renderer.mode
    if mode == "jsonl":
        env.renderer.jsonl(row)
    elif mode == "ids":
        env.renderer.line(row["id"])
    elif mode == "table":
        from retab_cli.render import tables

        note = "already deleted" if row["already_deleted"] else ""
        tables.result_lines(env.renderer, [(row["id"], "deleted", note)])
