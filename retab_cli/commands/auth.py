"""`retab auth login | status | logout`: the API key of a profile."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.errors import AuthError, RetabError, UsageError
from retab_cli.settings import check_key, remove_profile, save_profile

if TYPE_CHECKING:
    from retab_cli.session import Env

app = typer.Typer(help="Store, check and remove the API key of a profile (--profile NAME).",
                  no_args_is_help=True, rich_markup_mode=None)

VERIFY_ATTEMPTS = 3  # a login answers quickly or says why


@app.command()
@command(options=(), output="table")
def login(
    env: Env,
    with_key: Annotated[bool, typer.Option(
        "--with-key", help="Read the key from stdin instead of prompting.")] = False,
    no_verify: Annotated[bool, typer.Option(
        "--no-verify", help="Save without checking the key against the API.")] = False,
) -> int:
    """Save an API key (and the base URL it is for) in the profile."""
    key = _read_key(with_key)
    base_url = env.base_url()

    async def main() -> int:
        if not no_verify:
            async with env.client(base_url=base_url, key=key,
                                  max_attempts=VERIFY_ATTEMPTS) as client:
                await client.list({"limit": 1})
        save_profile(env.settings.config_path, env.settings.profile,
                     {"api_key": key, "base_url": base_url})
        env.renderer.info(f"saved the key for {base_url} in profile "
                          f"{env.settings.profile!r} ({env.settings.config_path})")
        return errors.OK

    return env.run(main)


def _read_key(with_key: bool) -> str:
    from retab_cli.session import stdin_is_tty

    if with_key or not stdin_is_tty():
        text = sys.stdin.readline()
        key = text[:-1] if text.endswith("\n") else text
        key = key[:-1] if key.endswith("\r") else key
    else:
        import getpass

        key = getpass.getpass("Retab API key (input hidden): ", stream=sys.stderr)
    if not key:
        raise UsageError("no key given")
    return check_key(key, "stdin" if with_key else "the prompt")


@app.command()
@command(options=("output", "json"))
def status(env: Env) -> int:
    """Show the profile, base URL and key in use, where each came from, and whether the key
    works (exit 0 if it does, 4 if not)."""

    async def main() -> int:
        from retab_cli.client import mask_key

        settings = env.settings
        info: dict[str, Any] = {
            "profile": settings.profile,
            "base_url": settings.base_url,
            "base_url_source": settings.base_url_source,
            "api_key": mask_key(settings.api_key) if settings.api_key else None,
            "api_key_source": settings.api_key_source,
            "config_file": str(settings.config_path),
            "key_works": False,
            "problem": None,
        }
        code = errors.OK
        try:
            client = env.client()
            async with client:
                await client.list({"limit": 1})
            info["key_works"] = True
        except RetabError as exc:
            info["problem"] = exc.message
            code = exc.exit_code if isinstance(exc, AuthError | UsageError) else errors.AUTH
        _show_status(env, info)
        return code

    return env.run(main)


def _show_status(env: Env, info: dict[str, Any]) -> None:
    from retab_cli.render import sanitize  # the problem is the server's message

    if env.renderer.mode in ("json", "jsonl"):
        env.renderer.json(info)
        return
    rows = [
        ("profile", info["profile"]),
        ("base url", f"{info['base_url']}  (from {info['base_url_source']})"),
        ("api key", f"{info['api_key'] or 'none'}  (from {info['api_key_source']})"),
        ("config", info["config_file"]),
        ("key works", "yes" if info["key_works"] else f"no: {info['problem']}"),
    ]
    for name, value in rows:
        env.renderer.line(f"{name:<10} {sanitize(value, single_line=True)}")


@app.command()
@command(options=(), output="table")
def logout(env: Env) -> None:
    """Remove the profile (its key and base URL) from the config file."""
    removed = remove_profile(env.settings.config_path, env.settings.profile)
    if removed:
        env.renderer.info(f"removed profile {env.settings.profile!r} from "
                          f"{env.settings.config_path}")
    else:
        env.renderer.info(f"profile {env.settings.profile!r} has no stored key; nothing to do")
