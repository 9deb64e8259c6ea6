"""`retab completion bash|zsh|fish`: the shell scripts, and the answers they ask for.

Typer's shell classes do the parsing; the ones here add what the tool needs: global
options given after the subcommand (`retab partitions get --profile staging <TAB>`)
are hoisted as for a real run, values a shell could misread (control characters, line
breaks) are never offered, and the bash and zsh scripts insert each value quoted
(bash `printf %q`, zsh `compadd`), so a value is never run as shell code. fish quotes
what it inserts itself; Typer's fish script is kept.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from retab_cli.commands._options import choices

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_RETAB_COMPLETE"

_BASH = """\
_retab_completion() {
    local value
    local -a values
    mapfile -t values < <(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD="$COMP_CWORD" \\
                          _RETAB_COMPLETE=complete_bash "$1")
    COMPREPLY=()
    for value in "${values[@]}"; do
        # Quoted as a word: a value is inserted, never run.
        [[ -n $value ]] && COMPREPLY+=("$(printf '%q' "$value")")
    done
    return 0
}

complete -o default -F _retab_completion retab
"""

_ZSH = """\
#compdef retab

_retab_completion() {
  local -a values
  values=("${(@f)$(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _RETAB_COMPLETE=complete_zsh retab)}")
  values=(${values:#})
  if (( ${#values} )); then
    # value:description pairs; _describe inserts each value quoted.
    _describe 'retab' values
  else
    _files
  fi
}

compdef _retab_completion retab
"""


def script(shell: str) -> str:
    if shell == "bash":
        return _BASH
    if shell == "zsh":
        return _ZSH
    # Typer has no public name for this (typer.completion only re-imports it).
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="retab", complete_var=COMPLETE_VAR, shell=shell)


def completion(
    shell: Annotated[str, typer.Argument(
        metavar="SHELL", help="bash, zsh or fish.", autocompletion=choices(SHELLS),
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


# ---- answering the scripts -------------------------------------------------------------------


def install() -> None:
    """Register the shell classes (a completion run only: `_RETAB_COMPLETE` is set)."""
    from typer._click.shell_completion import add_completion_class
    from typer._completion_classes import completion_init

    completion_init()
    for shell_class in _shell_classes():
        add_completion_class(shell_class, shell_class.name)


def _shell_classes() -> list[Any]:
    from typer._completion_classes import BashComplete, FishComplete, ZshComplete

    class Bash(_Answers, BashComplete):
        pass

    class Zsh(_Answers, ZshComplete):
        def format_completion(self, item: Any) -> str:
            value = item.value.replace("\\", "\\\\").replace(":", "\\:")
            return f"{value}:{_one_line(item.help)}" if item.help else value

        def complete(self) -> str:
            args, incomplete = self.get_completion_args()
            return "\n".join(self.format_completion(i) for i in self.get_completions(args, incomplete))

    class Fish(_Answers, FishComplete):
        pass

    return [Bash, Zsh, Fish]


class _Answers:
    """What every shell class here does differently from Typer's (mixed in before it)."""

    cli: Any  # the root command (ShellComplete's)

    def get_completion_args(self) -> tuple[list[str], str]:
        args, incomplete = super().get_completion_args()  # type: ignore[misc]
        return hoisted(self.cli, args, incomplete), incomplete

    def get_completions(self, args: list[str], incomplete: str) -> list[Any]:
        items = super().get_completions(args, incomplete)  # type: ignore[misc]
        return [item for item in items if item.value.isprintable()]


def hoisted(root: Any, args: list[str], incomplete: str) -> list[str]:
    """The words before the one being completed, with global options moved to the front as
    a real run would; when that word is a global option's value, the root's words only
    (the subcommand does not matter to it)."""
    from retab_cli.commands._tree import split_globals

    words = [*args, incomplete]
    front, rest = split_globals(words, root)
    last = len(args)
    kept = front if last in front else [*front, *rest]
    return [words[i] for i in kept if i != last]


def _one_line(text: str) -> str:
    return " ".join(text.split())
