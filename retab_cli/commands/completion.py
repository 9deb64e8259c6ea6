"""`retab completion bash|zsh|fish`: print the shell completion script."""

from __future__ import annotations

from typing import Annotated

import typer

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_RETAB_COMPLETE"


def script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="retab", complete_var=COMPLETE_VAR, shell=shell)


def completion(
    shell: Annotated[str, typer.Argument(
        metavar="SHELL", help="bash, zsh or fish.", autocompletion=lambda: list(SHELLS),
        show_default=False)],
) -> None:
    """Print the completion script for SHELL.

    \b
    Install it, e.g. for bash:
      retab completion bash > ~/.local/share/bash-completion/completions/retab
    """
    from retab_cli.parsing import choose
    from retab_cli.render import Renderer

    Renderer().line(script(choose(shell, SHELLS, "shell")).rstrip("\n"))
