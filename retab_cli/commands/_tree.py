"""The command tree as a whole: help pages that show what to type, and where the global
options given after a subcommand go.

Help shows an argument as its metavar (`ID...`), never as Typer draws it (`ID <list[str]>`
in the list, `{ID}...` in the usage line). Typer offers no hook for an argument's class,
so the root group (`Group`, the `cls` of the root app) gives every argument of its tree
`MetavarArgument`'s two help methods when the tree is built: every command, including
ones added later, gets the same help, in the real process and under the test runner alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from typer.core import TyperArgument, TyperGroup


class MetavarArgument(TyperArgument):
    """A TyperArgument whose help uses the metavar alone; it adds no state."""

    def shown_name(self) -> str:
        return self.metavar or (self.name or "").upper()

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.shown_name() if self.required else f"[{self.shown_name()}]"
        return [f"{name}..." if self.nargs != 1 else name]

    def get_help_record(self, ctx: Any) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        name = f"{self.shown_name()}..." if self.nargs != 1 else self.shown_name()
        return None if record is None else (name, record[1])


class Group(TyperGroup):
    """The root group: builds as Typer's, then sets the help of every argument below it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for command in walk(self):
            for param in command.params:
                if type(param) is TyperArgument:
                    param.__class__ = MetavarArgument


def walk(command: Any) -> Iterator[Any]:
    """A command and every command below it."""
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from walk(sub)


# ---- global options anywhere -----------------------------------------------------------------


def _options(command: Any) -> dict[str, bool]:
    """Every option name a command declares, and whether it takes a value."""
    table: dict[str, bool] = {}
    for param in command.params:
        if param.param_type_name == "option":
            takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
            table.update(dict.fromkeys([*param.opts, *param.secondary_opts], takes_value))
    return table


def _global_options(root: Any) -> dict[str, bool]:
    """The root's options that may be given anywhere (not --version: it acts at once)."""
    eager = {name for param in root.params if param.is_eager
             for name in (*param.opts, *param.secondary_opts)}
    return {name: valued for name, valued in _options(root).items() if name not in eager}


def split_globals(args: list[str], root: Any) -> tuple[list[int], list[int]]:
    """Global options given after the subcommand work anywhere: the positions of the words
    that move to the front (the root's options and their values) and of the others, each
    in order.

    The command tree is followed as the words name its groups and commands: an option the
    command in reach declares itself is its own and stays (`retab emulator --api-key K`
    configures the emulator), even when the root has one of the same name. The value of a
    valued option travels with it; `--` ends the options.
    """
    hoisted = _global_options(root)
    front: list[int] = []
    rest: list[int] = []
    command, own = root, hoisted
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(range(i, len(args)))
            break
        name = arg.split("=", 1)[0]
        target = rest if name in own or name not in hoisted else front
        valued = own.get(name, hoisted.get(name, False))
        target.append(i)
        if valued and "=" not in arg and i + 1 < len(args):
            target.append(i + 1)
            i += 1
        elif not arg.startswith("-") and arg in getattr(command, "commands", {}):
            command = command.commands[arg]
            own = _options(command)
        i += 1
    return front, rest
