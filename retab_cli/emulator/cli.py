"""`retab emulator`: serve the emulator, or run a command against a fresh one.

Imports only typer and the standard library: the server stack is imported inside
the commands, so `retab --help` stays fast and works without the extra.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Any

import typer

from retab_cli.emulator.config import (
    Settings,
    parse_duration,
    parse_rate_limit,
    parse_size,
    resolve_keys,
)
from retab_cli.emulator.output import err

EXTRA_MISSING = "error: the emulator needs its extra: pip install 'retab-cli[emulator]'"

app = typer.Typer(
    name="emulator",
    help=(
        "Run a local emulator of Retab's Partitions API (no account needed).\n\n"
        "It prints its URL and the environment variables that point retab at it."
    ),
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

HostOpt = Annotated[
    str | None, typer.Option("--host", metavar="HOST", help="Address to bind. [default: 127.0.0.1]")
]
PortOpt = Annotated[
    int | None,
    typer.Option("--port", metavar="PORT", min=0, max=65535, help="Port; 0 picks a free one. [default: 0]"),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="PATH",
        help="SQLite file, or :memory:. [default: $XDG_DATA_HOME/retab/emulator.sqlite3; :memory: for exec]",
    ),
]
KeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--api-key",
        metavar="KEY",
        help="Accepted API key (repeatable). Else RETAB_EMULATOR_API_KEYS (comma-separated), "
        "else rt_test_emulator.",
    ),
]
SpeedOpt = Annotated[
    float | None, typer.Option("--speed", metavar="F", help="Divide every run duration by this. [default: 1]")
]
RateOpt = Annotated[
    str | None,
    typer.Option("--rate-limit", metavar="N/S", help="N/S: N requests per S seconds per key (429 beyond)."),
]
ErrorRateOpt = Annotated[
    float | None,
    typer.Option("--error-rate", metavar="P", help="Share of /v1 requests answered with an error (0..1)."),
]
ErrorStatusOpt = Annotated[
    int | None,
    typer.Option("--error-status", metavar="CODE", help="Status of injected errors. [default: 503]"),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", metavar="N", help="Seed for --error-rate draws.")]
LatencyOpt = Annotated[
    str | None, typer.Option("--latency", metavar="DUR", help="Delay added to each /v1 request (50ms, 1s).")
]
ControlOpt = Annotated[bool, typer.Option("--control", help="Enable the control API under /_emulator/.")]
MaxUploadOpt = Annotated[
    str | None,
    typer.Option("--max-upload", metavar="SIZE", help="Largest file upload (500MiB, 2GiB). [default: 1GiB]"),
]
FetchTimeoutOpt = Annotated[
    str | None,
    typer.Option("--fetch-timeout", metavar="DUR", help="Deadline of a whole document fetch. [default: 10s]"),
]
IdleTimeoutOpt = Annotated[
    str | None,
    typer.Option("--idle-timeout", metavar="DUR", help="Close idle connections after this. [default: 5s]"),
]


@dataclass
class Options:
    """Options as given; None means "not given", so `exec` can inherit the parent's."""

    host: str | None = None
    port: int | None = None
    db: str | None = None
    api_key: list[str] | None = None
    speed: float | None = None
    rate_limit: str | None = None
    error_rate: float | None = None
    error_status: int | None = None
    seed: int | None = None
    latency: str | None = None
    control: bool = False
    max_upload: str | None = None
    fetch_timeout: str | None = None
    idle_timeout: str | None = None

    def over(self, parent: Options | None) -> Options:
        if parent is None:
            return self
        merged = Options()
        for f in fields(self):
            mine = getattr(self, f.name)
            setattr(merged, f.name, mine if mine not in (None, False) else getattr(parent, f.name))
        return merged


@app.callback()
def serve(
    ctx: typer.Context,
    host: HostOpt = None,
    port: PortOpt = None,
    db: DbOpt = None,
    api_key: KeyOpt = None,
    speed: SpeedOpt = None,
    rate_limit: RateOpt = None,
    error_rate: ErrorRateOpt = None,
    error_status: ErrorStatusOpt = None,
    seed: SeedOpt = None,
    latency: LatencyOpt = None,
    control: ControlOpt = False,
    max_upload: MaxUploadOpt = None,
    fetch_timeout: FetchTimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
) -> None:
    """Serve the emulator until Ctrl-C or SIGTERM."""
    options = Options(
        host, port, db, api_key, speed, rate_limit, error_rate, error_status, seed, latency, control,
        max_upload, fetch_timeout, idle_timeout,
    )
    if ctx.invoked_subcommand is not None:
        ctx.obj = options
        return
    _require_extra()
    from retab_cli.emulator.server import serve as serve_forever
    from retab_cli.emulator.store import default_db_path

    settings = _settings(options, str(default_db_path()))
    _warn_if_exposed(settings)
    raise typer.Exit(serve_forever(settings))


@app.command(
    "exec",
    context_settings={"allow_interspersed_args": False},
)
def exec_(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(metavar="COMMAND", help="The command to run, after --.")],
    host: HostOpt = None,
    port: PortOpt = None,
    db: DbOpt = None,
    api_key: KeyOpt = None,
    speed: SpeedOpt = None,
    rate_limit: RateOpt = None,
    error_rate: ErrorRateOpt = None,
    error_status: ErrorStatusOpt = None,
    seed: SeedOpt = None,
    latency: LatencyOpt = None,
    control: ControlOpt = False,
    max_upload: MaxUploadOpt = None,
    fetch_timeout: FetchTimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
) -> None:
    """Start an emulator on a free port, run COMMAND with RETAB_API_BASE_URL,
    RETAB_API_KEY and RETAB_SAMPLE_PDF set, stop it, and exit with COMMAND's code."""
    options = Options(
        host, port, db, api_key, speed, rate_limit, error_rate, error_status, seed, latency, control,
        max_upload, fetch_timeout, idle_timeout,
    ).over(ctx.obj if isinstance(ctx.obj, Options) else None)
    _require_extra()
    from retab_cli.emulator.server import run_command

    settings = _settings(options, ":memory:")
    _warn_if_exposed(settings)
    raise typer.Exit(run_command(settings, command))


def _require_extra() -> None:
    # Serving imports these anyway; importing them here gives one clear message.
    try:
        import fastapi  # noqa: F401
        import pypdf  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        err(EXTRA_MISSING)
        raise typer.Exit(1) from None


def _settings(options: Options, default_db: str) -> Settings:
    try:
        speed = 1.0 if options.speed is None else options.speed
        error_rate = 0.0 if options.error_rate is None else options.error_rate
        error_status = 503 if options.error_status is None else options.error_status
        if not speed > 0:
            raise ValueError("--speed must be above 0")
        if not 0 <= error_rate <= 1:
            raise ValueError("--error-rate must be within 0..1")
        if not 400 <= error_status <= 599:
            raise ValueError("--error-status must be an HTTP error status (400..599)")
        return Settings(
            host=options.host or "127.0.0.1",
            port=options.port or 0,
            db=options.db or default_db,
            api_keys=resolve_keys(options.api_key),
            speed=speed,
            rate_limit=parse_rate_limit(options.rate_limit) if options.rate_limit else None,
            error_rate=error_rate,
            error_status=error_status,
            seed=options.seed,
            latency_s=parse_duration(options.latency, "--latency") if options.latency else 0.0,
            control=options.control,
            **_limits(options),
        )
    except ValueError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None


def _limits(options: Options) -> dict[str, Any]:
    """The Settings fields of the size and timeout options that were given."""
    limits: dict[str, Any] = {}
    if options.max_upload is not None:
        limits["max_upload"] = parse_size(options.max_upload, "--max-upload")
    if options.fetch_timeout is not None:
        limits["fetch_timeout_s"] = _positive_duration(options.fetch_timeout, "--fetch-timeout")
    if options.idle_timeout is not None:
        limits["idle_timeout_s"] = _positive_duration(options.idle_timeout, "--idle-timeout")
    return limits


def _positive_duration(text: str, option: str) -> float:
    seconds = parse_duration(text, option)
    if not seconds > 0:
        raise ValueError(f"{option} must be above 0")
    return seconds


def _warn_if_exposed(settings: Settings) -> None:
    """Anything but loopback lets other machines in; the control API has no auth at all."""
    from retab_cli.urls import is_loopback

    if is_loopback(settings.host):
        return
    exposed = "the API and its control API (no auth)" if settings.control else "the API"
    err(f"warning: listening on {settings.host}: other machines can reach {exposed}")


def main() -> None:
    app(prog_name="retab emulator")
