"""`retab auth login | status | logout`: the API key of a profile."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import Env, JsonOpt, OutputOpt, stdin_is_tty
from retab_cli.errors import AuthError, RetabError, UsageError
from retab_cli.settings import check_key, remove_profile, save_profile

app = typer.Typer(help="Store, check and remove the API key of a profile (--profile NAME).",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command()
def login(
    ctx: typer.Context,
    with_key: Annotated[bool, typer.Option(
        "--with-key", help="Read the key from stdin instead of prompting.")] = False,
    no_verify: Annotated[bool, typer.Option(
        "--no-verify", help="Save without checking the key against the API.")] = False,
) -> None:
    """Save an API key (and the base URL it is for) in the profile."""
    env = Env(ctx, output="table")
    try:
        key = _read_key(with_key)
        base_url = env.base_url()
    except RetabError as exc:
        raise env.fail(exc) from None

    async def main() -> int:
        if not no_verify:
            await _verify(env, base_url, key)
        save_profile(env.settings.config_path, env.settings.profile,
                     {"api_key": key, "base_url": base_url})
        env.renderer.info(f"saved the key for {base_url} in profile "
                          f"{env.settings.profile!r} ({env.settings.config_path})")
        return errors.OK

    env.run(main)


def _read_key(with_key: bool) -> str:
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


async def _verify(env: Env, base_url: str, key: str) -> None:
    from retab_cli.budget import Budget
    from retab_cli.client import Client

    async with Client(base_url, key, budget=Budget(env.settings.max_rps),
                      notice=env.renderer.notice, max_attempts=3) as client:
        await client.list({"limit": 1})


@app.command()
def status(
    ctx: typer.Context,
    output: OutputOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show the profile, base URL and key in use, where each came from, and whether the key
    works (exit 0 if it does, 4 if not)."""
    env = Env(ctx, output=output, json=json)

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

    env.run(main)


def _show_status(env: Env, info: dict[str, Any]) -> None:
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
        env.renderer.line(f"{name:<10} {value}")


@app.command()
def logout(ctx: typer.Context) -> None:
    """Remove the profile (its key and base URL) from the config file."""
    env = Env(ctx, output="table")
    try:
        removed = remove_profile(env.settings.config_path, env.settings.profile)
    except RetabError as exc:
        raise env.fail(exc) from None
    if removed:
        env.renderer.info(f"removed profile {env.settings.profile!r} from "
                          f"{env.settings.config_path}")
    else:
        env.renderer.info(f"profile {env.settings.profile!r} has no stored key; nothing to do")
