"""The root Typer app: global options, sub-apps, and the error boundary.

Start-up stays light: command modules import the client, models and rich inside
their functions, so `retab --help` and `retab --version` load none of them.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Annotated, Any

import typer

from retab_cli import __version__, fastparse
from retab_cli.commands import auth, completion, partitions
from retab_cli.commands._options import choices, complete_profiles
from retab_cli.commands._tree import Group, split_globals
from retab_cli.emulator import cli as emulator_cli
from retab_cli.errors import EXIT_CODE_TABLE
from retab_cli.settings import GlobalOptions

fastparse.install()

_EXIT_CODES = "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODE_TABLE)
HELP = f"""retab: start, watch, inspect and cancel Retab partition runs.

Data goes to stdout (a table on a terminal, JSON otherwise); progress, warnings and
errors go to stderr.

\b
Exit codes:
{_EXIT_CODES}

With several ids the most severe outcome wins: 4, 2, 1, 6, 3, 5, 8, 7, 0.
"""

app = typer.Typer(
    name="retab",
    cls=Group,
    help=HELP,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
app.add_typer(partitions.app, name="partitions")
app.add_typer(auth.app, name="auth")
app.command("completion")(completion.completion)
app.add_typer(emulator_cli.app, name="emulator")


def version_text() -> str:
    return (f"retab-cli {__version__} (Python {platform.python_version()}; "
            f"{platform.system()} {platform.machine()})")


def _show_version(value: bool) -> None:
    if value:
        from retab_cli.render import Renderer

        Renderer().line(version_text())
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[str | None, typer.Option(
        metavar="NAME", help="Config profile to use [env: RETAB_PROFILE].",
        autocompletion=complete_profiles)] = None,
    base_url: Annotated[str | None, typer.Option(
        metavar="URL", help="API base URL [env: RETAB_API_BASE_URL; default https://api.retab.com].")] = None,
    api_key: Annotated[str | None, typer.Option(
        metavar="KEY", help="API key (visible to other users in the process list; prefer RETAB_API_KEY "
             "or 'retab auth login').")] = None,
    max_rps: Annotated[str | None, typer.Option(
        metavar="N", help="Request budget per second, shared by all requests; 0 = unlimited "
             "[env: RETAB_MAX_RPS; default 5].")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show each request and response on stderr: method, URL, status, time, "
                        "headers and bodies (cut at 2 KiB, documents left out, secrets masked)."
    )] = False,
    color: Annotated[str | None, typer.Option(
        metavar="WHEN", help="Colour: auto, always or never.",
        autocompletion=choices(("auto", "always", "never")))] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="Same as --color never.")] = False,
    no_progress: Annotated[bool, typer.Option(
        "--no-progress", help="No progress, change lines or live views on stderr; errors and "
                              "warnings still print [env: RETAB_NO_PROGRESS=1].")] = False,
    version: Annotated[bool, typer.Option(
        "--version", help="Show the version and exit.", is_eager=True,
        callback=_show_version)] = False,
) -> None:
    from retab_cli.errors import UsageError
    from retab_cli.parsing import choose

    if color is not None:
        color = choose(color, ("auto", "always", "never"), "--color")
    rps: float | None = None
    if max_rps is not None:
        try:
            rps = float(max_rps)
        except ValueError:
            raise UsageError("--max-rps must be a number >= 0 (0 = unlimited)") from None
    ctx.obj = GlobalOptions(
        profile=profile,
        base_url=base_url,
        api_key=api_key,
        max_rps=rps,
        debug=debug,
        color="never" if no_color else color,
        no_progress=no_progress,
    )


def hoist_globals(args: list[str], root: Any = None) -> list[str]:
    """The words with the global options given after the subcommand moved to the front, so
    they work anywhere (see `commands._tree.split_globals`)."""
    root = root if root is not None else typer.main.get_command(app)
    front, rest = split_globals(args, root)
    return [args[i] for i in (*front, *rest)]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turn every failure into one line and an exit code."""
    from retab_cli.commands._common import run_app
    from retab_cli.render.streams import escape_unencodable, flush_quietly, stand_in_closed_streams

    stand_in_closed_streams()  # `>&-` / `2>&-`: see render/streams.py
    escape_unencodable()  # an ASCII or Latin-1 locale: see render/streams.py
    if completion.COMPLETE_VAR in os.environ:
        completion.install()  # shell completion only: skipped on normal runs
    root = typer.main.get_command(app)
    args = hoist_globals(list(sys.argv[1:] if argv is None else argv), root)
    code = run_app(root, args)
    if code in (130, 143):
        # Interrupted: leave at once, even if a thread (a DNS lookup) is still blocked.
        for stream in (sys.stdout, sys.stderr):
            if not stream.closed:
                flush_quietly(stream)
        os._exit(code)
    sys.exit(code)
