"""`retab auth login | status | list | switch | logout`: the profiles and their API keys."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.commands._options import complete_profiles
from retab_cli.errors import AuthError, RetabError, UsageError
from retab_cli.settings import (
    check_key,
    config_path,
    list_profiles,
    read_key_stream,
    remove_profile,
    save_profile,
    switch_profile,
)

if TYPE_CHECKING:
    from retab_cli.session import Env

app = typer.Typer(help="Store, check, list and switch the API keys of profiles (--profile NAME).",
                  no_args_is_help=True, rich_markup_mode=None)

VERIFY_ATTEMPTS = 3  # a login answers quickly or says why


@app.command()
@command(options=(), output="table", creating=True)
def login(
    env: Env,
    with_key: Annotated[bool, typer.Option(
        "--with-key", help="Read the key from stdin instead of prompting.")] = False,
    no_verify: Annotated[bool, typer.Option(
        "--no-verify", help="Save without checking the key against the API.")] = False,
) -> int:
    """Save an API key (and the base URL it is for) in the profile, creating it if new."""
    key = _read_key(with_key)
    base_url = env.base_url()

    async def main() -> int:
        if not no_verify:
            async with env.client(base_url=base_url, key=key,
                                  max_attempts=VERIFY_ATTEMPTS) as client:
                await client.list({"limit": 1})
        settings = env.settings
        save_profile(settings.config_path, settings.profile,
                     {"api_key": key, "base_url": base_url}, warn=env.renderer.warn)
        env.renderer.info(f"saved the key for {base_url} in profile "
                          f"{settings.profile!r} ({settings.config_path})")
        return errors.OK

    return env.run(main)


def _read_key(with_key: bool) -> str:
    """From a pipe (a few KiB at most, whatever is sent) or a hidden prompt, then checked."""
    from retab_cli.session import stdin_is_tty

    if with_key or not stdin_is_tty():
        try:
            return read_key_stream(sys.stdin.buffer, "stdin")
        except AuthError as exc:  # the general hint would be to run this very command
            exc.hint = "pipe the key in on one line, e.g. retab auth login --with-key < key.txt"
            raise
    import getpass

    key = getpass.getpass("Retab API key (input hidden): ", stream=sys.stderr)
    if not key:
        raise UsageError("no key given")
    return check_key(key, "the prompt")


@app.command()
@command(options=("output", "json"))
def status(env: Env) -> int:
    """Show the profile, base URL and key in use, where each came from, and whether the key
    works (exit 0 if it does, 4 if not)."""

    async def main() -> int:
        from retab_cli.render.profiles import show_status

        settings = env.settings
        info = settings.status_info()
        problem: RetabError | None = None
        try:
            async with env.client() as client:
                await client.list({"limit": 1})
            info["key_works"] = True
        except RetabError as exc:
            info["problem"] = exc.message
            if not isinstance(exc, AuthError | UsageError):
                exc.exit_code = errors.AUTH  # type: ignore[misc]  # the key was not shown to work
            problem = exc
        show_status(env.renderer, info, settings.describe_key())
        if problem is None:
            return errors.OK
        env.renderer.error(problem)  # as every command reports (a JSON line under --json)
        return problem.exit_code

    return env.run(main)


@app.command("list")
@command(options=("output", "json"))
def list_(env: Env) -> None:
    """List the profiles in the config file: base URL, masked key, and which one is active."""
    from retab_cli.render.profiles import show_profiles

    show_profiles(env.renderer, list_profiles(env.opts, os.environ, warn=env.renderer.warn))


@app.command()
@command(options=(), output="table")
def switch(
    env: Env,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The profile to make active.",
                                        show_default=False, autocompletion=complete_profiles)],
) -> None:
    """Make a profile the active one (the default for every command without --profile)."""
    path = config_path(os.environ)
    switch_profile(path, name, warn=env.renderer.warn)
    env.renderer.info(f"active profile: {name!r} ({path})")
    overriding = os.environ.get("RETAB_PROFILE")
    if overriding and overriding != name:
        env.renderer.warn(f"warning: RETAB_PROFILE={overriding} is set and takes precedence "
                          "in this shell")


@app.command()
@command(options=(), output="table")
def logout(env: Env) -> None:
    """Remove the profile (its key and base URL) from the config file."""
    settings = env.settings
    removed = remove_profile(settings.config_path, settings.profile, warn=env.renderer.warn)
    if removed:
        env.renderer.info(f"removed profile {settings.profile!r} from {settings.config_path}")
    else:
        env.renderer.info(f"profile {settings.profile!r} has no stored key; nothing to do")
