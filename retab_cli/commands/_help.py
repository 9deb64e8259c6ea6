"""Help pages that show what to type: an argument as its metavar (`ID...`), never as Typer
draws it (`ID <list[str]>` in the list, `{ID}...` in the usage line).

Typer offers no hook for an argument's class, so the root group (`Group`, the `cls` of the
root app) gives every argument of its tree `MetavarArgument`'s two help methods when the
tree is built: every command, including ones added later, gets the same help, in the
real process and under the test runner alike.
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
