"""Option and argument declarations shared by several commands (one help text each)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from retab_cli.render import MODES
from retab_cli.statuses import KNOWN_STATUSES

if TYPE_CHECKING:
    from retab_cli.creating import CreateOptions
    from retab_cli.settings import Settings

# ---- shell completion of values ------------------------------------------------------------


def choices(values: Sequence[str]) -> Callable[[str], list[str]]:
    """Completion of a fixed set of values (the shells match what was typed as it is)."""

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete


def completion_settings(ctx: typer.Context) -> Settings | None:
    """The settings a command would use: the environment, the config file and the global
    options typed so far; None when they cannot be resolved (say, an unknown profile)."""
    from retab_cli.errors import RetabError
    from retab_cli.settings import GlobalOptions, resolve

    given = ctx.find_root().params
    opts = GlobalOptions(profile=given.get("profile"), base_url=given.get("base_url"),
                         api_key=given.get("api_key"))
    try:
        return resolve(opts, os.environ)
    except RetabError:
        return None


def complete_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """Recent ids of the profile and API in use."""
    from retab_cli.recent import complete_ids as recent_ids

    settings = completion_settings(ctx)
    return recent_ids(settings, incomplete) if settings else []


def complete_profiles(incomplete: str) -> list[str]:
    """The profiles of the config file."""
    from retab_cli.errors import RetabError
    from retab_cli.settings import config_path, load_config, profile_names

    try:
        names = profile_names(load_config(config_path(os.environ), lambda _: None))
    except RetabError:
        return []
    return [name for name in names if name.startswith(incomplete)]


# ---- declarations ----------------------------------------------------------------------------

OutputOpt = Annotated[str | None, typer.Option(
    "--output", "-o", metavar="MODE", show_default=False, autocompletion=choices(MODES),
    help="Output: auto, table, json, jsonl, ids or csv (list, get, watch) [env: RETAB_OUTPUT]. "
         "auto is a table on a terminal, JSON otherwise.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Same as -o json.")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print ids only (-o ids) and no progress.")]
FieldsOpt = Annotated[str | None, typer.Option(
    metavar="FIELDS", show_default=False,
    help="Comma-separated fields (dotted paths, e.g. id,status,file.filename) to keep in JSON "
         "or show as table columns.")]

_IDS_HELP = "Partition ids, or - to read them from stdin."
IdsArg = Annotated[list[str], typer.Argument(
    metavar="ID", help=_IDS_HELP, show_default=False, autocompletion=complete_ids)]
OptionalIdsArg = Annotated[list[str] | None, typer.Argument(
    metavar="ID", help=_IDS_HELP, show_default=False, autocompletion=complete_ids)]

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="Show what would be sent; send nothing.")]

StatusOpt = Annotated[list[str] | None, typer.Option(
    "--status", metavar="STATUS", help="Only runs with this status (repeatable): "
                     "pending, queued, in_progress, completed, failed, cancelled.",
    show_default=False, autocompletion=choices(KNOWN_STATUSES))]
FilenameOpt = Annotated[str | None, typer.Option(
    "--filename", metavar="PREFIX", help="Only files whose name starts with this (case-insensitive).",
    show_default=False)]
_WHEN = ("YYYY-MM-DD (a UTC day), Nd (N days ago), Nh or Nm (hours or minutes ago), or an "
         "RFC 3339 time (2026-11-01T09:30:00Z).")
SinceOpt = Annotated[str | None, typer.Option(
    "--since", metavar="WHEN", help=f"Created at or after this: {_WHEN}", show_default=False)]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", metavar="WHEN", help=f"Created at or before this: {_WHEN}", show_default=False)]


def _ignore(_: str) -> None:
    return None


def duration(text: str | None, flag: str) -> float | None:
    """A duration option's value in seconds (None when not given)."""
    from retab_cli.parsing import parse_duration

    return parse_duration(text, flag) if text else None


def _complete_model(incomplete: str) -> list[str]:
    from retab_cli.creating import MODELS

    return [m for m in MODELS if m.startswith(incomplete)]


@dataclass(frozen=True)
class RunFlags:
    """What to split along and how: the body options of every run one command starts."""

    key: Annotated[str, typer.Option(
        # Required, but checked by the engine (a clearer message than Typer's), so marked here.
        metavar="KEY", help="What to split along, e.g. 'invoice number'.  [required]",
        show_default=False)] = ""
    instructions: Annotated[str | None, typer.Option(
        metavar="TEXT", help="How to partition (default: a sentence built from --key).",
        show_default=False)] = None
    model: Annotated[str | None, typer.Option(
        metavar="TIER", help="Model tier: retab-micro, retab-small or retab-large (server default when "
             "omitted).", autocompletion=_complete_model, show_default=False)] = None
    consensus: Annotated[int | None, typer.Option(
        metavar="N", help="Consensus votes, 1-8.", show_default=False)] = None
    no_overlap: Annotated[bool, typer.Option(
        "--no-overlap", help="A page may belong to one chunk only.")] = False
    bust_cache: Annotated[bool, typer.Option(
        "--bust-cache", help="Skip the service's cache.")] = False

    def options(self, *, background: bool, warn: Callable[[str], None] = _ignore) -> CreateOptions:
        """The engine's options; `warn` hears of a model tier this version does not know
        (it is sent anyway: new tiers appear before the tool knows them)."""
        from retab_cli.creating import MODELS, CreateOptions

        if self.model and self.model not in MODELS:
            warn(f"warning: --model {self.model!r} is not a tier this version knows "
                 f"({', '.join(MODELS)}); sending it anyway")
        return CreateOptions(key=self.key, instructions=self.instructions, model=self.model,
                             consensus=self.consensus, no_overlap=self.no_overlap,
                             bust_cache=self.bust_cache, background=background)
