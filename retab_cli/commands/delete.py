"""`retab partitions delete ID... | -`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import (
    Env,
    FieldsOpt,
    JsonOpt,
    Outcome,
    OutputOpt,
    QuietOpt,
    confirm_destructive,
    ordered,
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
        codes: list[int] = []
        rows: list[dict[str, Any]] = []
        async with env.client() as client:
            async def remove(partition_id: str) -> dict[str, Any]:
                result = await client.delete(partition_id)
                already = bool(result.extra.get("already_deleted"))
                return {"id": partition_id, "deleted": True, "already_deleted": already}

            def emit(outcome: Outcome) -> None:
                if outcome.error is not None:
                    outcome.error.partition_id = outcome.item
                    env.renderer.error(outcome.error)
                    codes.append(outcome.error.exit_code)
                    return
                done.append(outcome.item)
                rows.append(outcome.value)
                _show(env, outcome.value)

            try:
                await ordered(wanted, remove, emit)
            except errors.RetabError as exc:
                env.renderer.error(exc)
                report_partial(env, "deleted", done, wanted)
                codes.append(exc.exit_code)
        _show_all(env, rows, single=len(ids) == 1 and ids[0] != "-")
        return errors.worst(codes)

    def on_interrupt(code: int) -> None:
        report_partial(env, "deleted", done, wanted, interrupted=True)

    def on_broken_pipe() -> int:
        report_partial(env, "deleted", done, wanted, reason="stdout was closed")
        return errors.ERROR

    env.run(main, on_interrupt=on_interrupt, on_broken_pipe=on_broken_pipe)


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


def _show_all(env: Env, rows: list[dict[str, Any]], *, single: bool) -> None:
    if env.renderer.mode == "json" and rows:
        env.renderer.json(rows[0]) if single and len(rows) == 1 else env.renderer.json_list(rows)
