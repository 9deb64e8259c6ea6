"""`retab partitions batch SOURCE... --key KEY`: a folder of documents to runs and chunk files,
resumable and sharded (the engine: retab_cli.batch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from retab_cli.commands._common import command
from retab_cli.commands._options import RunFlags

if TYPE_CHECKING:
    from retab_cli.batch.ui import BatchRequest
    from retab_cli.session import Env


@dataclass(frozen=True)
class BatchFlags:
    """Which documents, where the journal and chunks go, and when to stop."""

    include: Annotated[list[str] | None, typer.Option(
        "--include", metavar="GLOB", show_default=False,
        help="Take only matching paths (repeatable; default: the document types create "
             "accepts). '*.pdf' matches at any depth, '/x.pdf' at the top only.")] = None
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", metavar="GLOB", show_default=False,
        help="Leave out matching paths (repeatable).")] = None
    journal: Annotated[str | None, typer.Option(
        metavar="PATH", show_default=False,
        help="The journal (SQLite) that makes a re-run resume (default: one per sources, "
             "parameters and shard in the user data directory).")] = None
    split_to: Annotated[str | None, typer.Option(
        metavar="DIR", show_default=False,
        help="Write each completed run's chunks under DIR/<relative path>/, as split does.")] = None
    shard: Annotated[str | None, typer.Option(
        metavar="I/N", show_default=False,
        help="Take only shard I of N (by a hash of the relative path): N jobs cover every "
             "document once.")] = None
    max_credits: Annotated[float | None, typer.Option(
        metavar="N", show_default=False,
        help="Stop creating before the estimated credits of this run would pass N.")] = None
    max_failures: Annotated[int, typer.Option(
        metavar="N", help="Stop creating after N failed documents in a row (0: never).")] = 10
    max_duration: Annotated[str | None, typer.Option(
        metavar="DUR", show_default=False,
        help="Create nothing new after DUR (e.g. 30m); runs created are still followed.")] = None
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Send the failed and cancelled documents again.")] = False
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan and the cost estimate; send nothing.")] = False
    cancel_on_interrupt: Annotated[bool, typer.Option(
        "--cancel-on-interrupt", help="On Ctrl-C or SIGTERM, cancel the runs still active "
                                      "(within 5 s).")] = False
    no_progress: Annotated[bool, typer.Option(
        "--no-progress", help="No progress display or lines on stderr.")] = False


@command(options=("output", "json", "quiet"))
def batch(
    env: Env,
    sources: Annotated[list[str], typer.Argument(
        metavar="SOURCE", help="Files and directories (walked recursively), or - to read paths "
                               "from stdin.", show_default=False)],
    *,
    run: RunFlags,
    flags: BatchFlags,
) -> int:
    """Partition every document under SOURCE... into runs and, with --split-to, chunk files.
    Running it again resumes: done documents are skipped, created runs watched, the rest
    sent. Exit 0 all completed, 3 some failed, 5 some cancelled, 7 stopped early (run it
    again), 2 nothing could be read."""
    from retab_cli.batch.ui import BatchSession, report_interrupt, run_batch

    request = _request(sources, run, flags)
    if flags.dry_run:
        from retab_cli.batch.ui import dry_run

        return dry_run(env, request)
    session = BatchSession()

    async def main() -> int:
        return await run_batch(env, request, session)

    async def on_interrupt(code: int) -> None:
        await report_interrupt(env, request, session, code)

    return env.run(main, on_interrupt=on_interrupt)


def _request(sources: list[str], run: RunFlags, flags: BatchFlags) -> BatchRequest:
    from pathlib import Path

    from retab_cli.batch.journal import default_path
    from retab_cli.batch.limits import Limits
    from retab_cli.batch.pipeline import BatchSpec
    from retab_cli.batch.sending import batch_params
    from retab_cli.batch.shard import WHOLE, parse_shard
    from retab_cli.batch.sources import selection
    from retab_cli.batch.ui import BatchRequest
    from retab_cli.errors import UsageError
    from retab_cli.parsing import parse_duration

    run.options(background=True)  # the create options' own checks (key, consensus, model)
    if flags.max_failures < 0:
        raise UsageError("--max-failures must be 0 (never stop) or more")
    if flags.max_credits is not None and flags.max_credits < 0:
        raise UsageError("--max-credits must not be negative")
    params = batch_params(run.key, run.instructions, run.model, run.consensus, run.no_overlap,
                          run.bust_cache)
    shard = parse_shard(flags.shard) if flags.shard else WHOLE
    limits = Limits(max_credits=flags.max_credits, max_failures=flags.max_failures,
                    max_duration=parse_duration(flags.max_duration, "--max-duration")
                    if flags.max_duration else None)
    spec = BatchSpec(tuple(sources), params, selection(flags.include or (), flags.exclude or ()),
                     shard, Path(flags.split_to) if flags.split_to else None, flags.retry_failed,
                     limits)
    journal = Path(flags.journal) if flags.journal else default_path(sources, params, shard)
    return BatchRequest(spec, journal, _resume(sources, run, flags, journal),
                        flags.cancel_on_interrupt, not flags.no_progress)


def _resume(sources: list[str], run: RunFlags, flags: BatchFlags, journal: object) -> str:
    """The same batch, on the same journal (so it resumes wherever it is run from)."""
    args = ["retab", "partitions", "batch", *sources, "--key", run.key]
    for name, value in (("--instructions", run.instructions), ("--model", run.model),
                        ("--consensus", run.consensus), ("--split-to", flags.split_to),
                        ("--shard", flags.shard), ("--max-credits", flags.max_credits),
                        ("--max-duration", flags.max_duration)):
        if value is not None:
            args += [name, str(value)]
    for name, values in (("--include", flags.include), ("--exclude", flags.exclude)):
        for value in values or ():
            args += [name, value]
    if flags.max_failures != 10:
        args += ["--max-failures", str(flags.max_failures)]
    args += [flag for flag, on in (("--no-overlap", run.no_overlap),
                                   ("--bust-cache", run.bust_cache),
                                   ("--retry-failed", flags.retry_failed)) if on]
    args += ["--journal", str(journal)]
    import shlex

    command = shlex.join(args)
    return command + "  (with the same paths on stdin)" if "-" in sources else command
