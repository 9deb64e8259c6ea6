"""Plain parameters are coerced without pydantic; anything else keeps Typer's path."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer
from typer._coercion import resolve_type_descriptor
from typer.models import OptionInfo
from typer.testing import CliRunner

from retab_cli.commands import _fastparse


def descriptor(annotation: object, **info: object) -> object:
    return resolve_type_descriptor(annotation=annotation, parameter_info=OptionInfo(**info))


@pytest.mark.parametrize(("annotation", "expected"), [
    (str, (str, False)), (str | None, (str, False)), (int, (int, False)),
    (bool, (bool, False)), (list[str], (str, True)), (list[str] | None, (str, True)),
    (float | None, (float, False)),
])
def test_plain_kinds(annotation: object, expected: tuple[type, bool]) -> None:
    assert _fastparse.plain_kind(descriptor(annotation)) == expected  # type: ignore[arg-type]


def test_bounded_parameters_keep_typers_path() -> None:
    assert _fastparse.plain_kind(descriptor(int, min=0, max=10)) is None  # type: ignore[arg-type]


def test_coercion_through_a_real_command() -> None:
    _fastparse.install()
    app = typer.Typer()
    seen: dict[str, object] = {}

    @app.command()
    def main(names: list[str], count: Annotated[int, typer.Option()] = 1,
             ratio: Annotated[float | None, typer.Option()] = None,
             flag: Annotated[bool, typer.Option("--flag")] = False) -> None:
        seen.update(names=names, count=count, ratio=ratio, flag=flag)

    runner = CliRunner()
    result = runner.invoke(app, ["a", "b", "--count", "3", "--ratio", "0.5", "--flag"])
    assert result.exit_code == 0, result.output
    assert seen == {"names": ["a", "b"], "count": 3, "ratio": 0.5, "flag": True}
    bad = runner.invoke(app, ["a", "--count", "many"])
    assert bad.exit_code == 2
    assert "'many' is not a valid integer." in bad.stderr
