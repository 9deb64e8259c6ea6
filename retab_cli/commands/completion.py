"""`retab completion bash|zsh|fish`: print the shell completion script."""

from __future__ import annotations

from typing import Annotated

import typer

from retab_cli.errors import UsageError

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_RETAB_COMPLETE"

app = typer.Typer(help="Shell completion scripts.", rich_markup_mode=None)


def script(shell: str) -> str:
    # Typer has no public name for this (typer.completion only re-imports it).
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="retab", complete_var=COMPLETE_VAR, shell=shell)


@app.callback(invoke_without_command=True)
def completion(
    shell: Annotated[str, typer.Argument(
        help="bash, zsh or fish.", autocompletion=lambda: list(SHELLS), show_default=False)],
) -> None:
    """Print the completion script for SHELL. Install, e.g. for bash:
    retab completion bash > ~/.local/share/bash-completion/completions/retab"""
    if shell not in SHELLS:
        raise UsageError(f"unknown shell {shell!r}: choose bash, zsh or fish")
    from retab_cli.render import Renderer

    Renderer().line(script(shell).rstrip("\n"))
