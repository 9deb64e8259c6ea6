"""The plain path coerces exactly as Typer does, steps aside when Typer changes, and is on.

"Typer's path" below is Typer's own runtime-parameter factory
(`typer._coercion.build_runtime_param`), put back in place of the plain one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.main
from hypothesis import given
from hypothesis import strategies as st
from typer import _coercion, core
from typer._param_types import file_coercion_annotation
from typer.models import OptionInfo
from typer.testing import CliRunner

from retab_cli import fastparse
from retab_cli.app import app as retab_app

HOOK = "build_runtime_param"  # not re-exported by typer.core
TYPERS_BUILDER = _coercion.build_runtime_param


def hook() -> Any:
    """The runtime-parameter factory Typer's parameters use now."""
    return getattr(core, HOOK)


runner = CliRunner()


@pytest.fixture
def typers_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Typer's own factory in place for this test (the plain one comes back afterwards)."""
    assert fastparse.active()
    monkeypatch.setattr(core, HOOK, TYPERS_BUILDER)
    yield
    assert not fastparse.active()


def sample_app() -> typer.Typer:
    """One command with every parameter kind the tool declares (and a float, a list[int])."""
    app = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False)

    @app.command()
    def main(
        ctx: typer.Context,
        on: Annotated[bool, typer.Argument()] = False,
        names: Annotated[list[str] | None, typer.Argument(metavar="NAME")] = None,
        count: Annotated[int, typer.Option(metavar="N")] = 1,
        limit: Annotated[int | None, typer.Option()] = None,
        ratio: Annotated[float | None, typer.Option(metavar="F")] = None,
        label: Annotated[str | None, typer.Option(help="A label.")] = None,
        title: Annotated[str, typer.Option(show_default=False)] = "untitled",
        tag: Annotated[list[str] | None, typer.Option()] = None,
        num: Annotated[list[int] | None, typer.Option()] = None,
        flag: Annotated[bool, typer.Option("--flag", envvar="SAMPLE_FLAG")] = False,
        switch: Annotated[bool, typer.Option()] = True,
    ) -> None:
        values = dict(on=on, names=names, count=count, limit=limit, ratio=ratio, label=label,
                      title=title, tag=tag, num=num, flag=flag, switch=switch)
        # The runtime parameters Typer used (flags given as bools need none).
        used = {p.name: getattr(p, "_runtime_param", None) for p in ctx.command.params}
        served = {name: type(runtime).__name__ for name, runtime in used.items()
                  if runtime is not None}
        typer.echo(json.dumps({"values": {k: repr(v) for k, v in values.items()},
                               "served": served}))

    return app


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(sample_app(), args, env=env)
    return result.exit_code, result.stdout, result.stderr


def values(stdout: str) -> dict[str, str]:
    parsed: dict[str, str] = json.loads(stdout)["values"]
    return parsed


def served(stdout: str) -> dict[str, str]:
    parsed: dict[str, str] = json.loads(stdout)["served"]
    return parsed


# (b) parity: the same command line through both paths gives the same outcome.

INT_INPUTS = ["5", "0", "-0", "+5", "-12", "007", "5.0", " 5", "5 ", "1_000", "٥", "１", "1e3",
              "inf", "nan", "0x10", "5.5", "", "many", "9" * 30, "9" * 101]
FLOAT_INPUTS = ["5", "5.0", ".5", "5.", "-0", "+.5", "1e-3", "1E3", "1_000", " 5", "inf", "-inf",
                "nan", "NaN", "Infinity", "٥", "0x10", "", "-", ".", "x", "0.1", "1" * 60 + ".5"]
BOOL_INPUTS = ["t", "f", "TRUE", "False", "on", "OFF", "1", "0", "y", "No", "yes", " true ", "",
               " ", "2", "maybe", "tRuE", "\u0130"]

PARITY_CASES = (
    [["--count", text] for text in INT_INPUTS]
    + [["--limit", text] for text in INT_INPUTS]
    + [["--ratio", text] for text in FLOAT_INPUTS]
    + [[text] for text in BOOL_INPUTS]
    + [[], ["t", "a", "b"], ["t", "--", "-x", " y "], ["--tag", "a", "--tag", "", "--tag", "٥"],
       ["--num", "1", "--num", "+2"], ["--num", "1", "--num", "x"], ["--num", "1", "--num", " 2"],
       ["--label", ""], ["--label", "x y"], ["--title", "-"], ["--flag", "--no-switch"],
       ["--count"], ["--count=", "t"], ["--limit", "3", "--ratio", "0.25", "--label", "é"]]
)


@pytest.mark.parametrize("args", PARITY_CASES, ids=repr)
def test_the_plain_path_gives_typers_outcome(args: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert fastparse.active()
    plain = run(args)
    monkeypatch.setattr(core, HOOK, TYPERS_BUILDER)
    typers = run(args)
    if plain[0] == 0:
        assert (plain[0], values(plain[1]), plain[2]) == (typers[0], values(typers[1]), typers[2])
    else:
        assert plain == typers


@pytest.mark.parametrize("text", BOOL_INPUTS, ids=repr)
def test_booleans_from_the_environment_match_typer(text: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert fastparse.active()
    plain = run([], env={"SAMPLE_FLAG": text})
    monkeypatch.setattr(core, HOOK, TYPERS_BUILDER)
    typers = run([], env={"SAMPLE_FLAG": text})
    assert plain[0] == typers[0]
    assert plain[2] == typers[2]
    if plain[0] == 0:
        assert values(plain[1]) == values(typers[1])


def test_typers_path_reports_typers_own_errors() -> None:
    """The error text is pydantic's, as Typer words it, not a message of this tool's."""
    code, stdout, stderr = run(["--count", "5.5"])
    assert (code, stdout) == (2, "")
    assert stderr.splitlines()[-1] == ("Error: Invalid value for '--count': Input should be a "
                                       "valid integer, unable to parse string as an integer")


def test_plain_values_are_converted_here() -> None:
    code, stdout, stderr = run(["t", "a", "--count", "-3", "--ratio", "2.5", "--tag", "x",
                                "--num", "7", "--label", "L", "--flag"])
    assert (code, stderr) == (0, "")
    assert values(stdout) == {
        "on": "True", "names": "['a']", "count": "-3", "limit": "None", "ratio": "2.5",
        "label": "'L'", "title": "'untitled'", "tag": "['x']", "num": "[7]", "flag": "True",
        "switch": "True"}
    assert set(served(stdout).values()) == {"PlainParam"}
    assert sorted(served(stdout)) == ["count", "label", "limit", "names", "num", "on", "ratio", "tag",
                                      "title"]  # flags given as bools need no coercion


# The table of which inputs the plain path decides itself; all others go to Typer.
ROUTES: list[tuple[type, object, object]] = [
    (int, "5", 5), (int, "-0", 0), (int, "+5", 5), (int, "007", 7), (int, "9" * 100, int("9" * 100)),
    (float, "5", 5.0), (float, ".5", 0.5), (float, "5.", 5.0), (float, "-0", -0.0),
    (bool, "t", True), (bool, "TRUE", True), (bool, "on", True), (bool, "1", True),
    (bool, "f", False), (bool, "Off", False), (str, " 5 ", " 5 "), (str, "", ""),
    (int, 3, 3), (float, 0.5, 0.5), (bool, False, False),
]
TO_TYPER: list[tuple[type, object]] = [
    (int, "5.0"), (int, " 5"), (int, "1_000"), (int, "٥"), (int, "1e3"), (int, "9" * 101),
    (int, "x"), (int, True), (int, 5.0), (float, "1e-3"), (float, "inf"), (float, "nan"),
    (float, "1_0"), (float, " .5"), (float, 1), (bool, ""), (bool, " t"), (bool, "\u0130"),
    (bool, 1), (str, b"x"), (str, 5),
]


@pytest.mark.parametrize(("kind", "value", "expected"), ROUTES, ids=repr)
def test_inputs_the_plain_path_converts(kind: type, value: object, expected: object) -> None:
    result = fastparse.plain_value(kind, value)
    assert (type(result), repr(result)) == (type(expected), repr(expected))


@pytest.mark.parametrize(("kind", "value"), TO_TYPER, ids=repr)
def test_inputs_left_to_typer(kind: type, value: object) -> None:
    assert fastparse.plain_value(kind, value) is fastparse.UNDECIDED


def outcome(build: Callable[[Any], Any], kind: type, value: object) -> tuple[str, str]:
    param = _param_of_kind(kind)
    runtime = build(param.type_descriptor)
    try:
        result = runtime.coerce(value, param=param, ctx=None)
    except typer.BadParameter as exc:
        return "error", exc.format_message()
    if isinstance(result, float) and math.isnan(result):
        return "value", "nan"
    return "value", f"{type(result).__name__}:{result!r}"


@functools.cache
def _param_of_kind(kind: type) -> Any:
    app = sample_app()
    option = {int: "count", float: "ratio", bool: "on", str: "title"}[kind]
    command = typer.main.get_command(app)
    return next(p for p in command.params if p.name == option)


NUMBERISH = st.text(alphabet="0123456789+-._eE xnaifINF٥\t", max_size=12)


@given(text=NUMBERISH, kind=st.sampled_from([int, float]))
def test_numbers_match_typer_on_generated_text(text: str, kind: type) -> None:
    assert outcome(hook(), kind, text) == outcome(TYPERS_BUILDER, kind, text)


@given(text=st.from_regex(r"[+-]?[0-9]{1,45}(\.[0-9]{0,50})?", fullmatch=True))
def test_long_decimals_round_as_typer_rounds_them(text: str) -> None:
    assert outcome(hook(), float, text) == outcome(TYPERS_BUILDER, float, text)
    assert outcome(hook(), int, text) == outcome(TYPERS_BUILDER, int, text)


@given(text=st.text(alphabet="tTrRuUeEfFaAlLsSyYnNoO01 \u0130", max_size=6),
       kind=st.sampled_from([bool, str]))
def test_booleans_and_strings_match_typer_on_generated_text(text: str, kind: type) -> None:
    assert outcome(hook(), kind, text) == outcome(TYPERS_BUILDER, kind, text)


# (e) any coercion setting sends the parameter to Typer's path, which honours it.

def descriptor(annotation: Any, **settings: Any) -> Any:
    return _coercion.resolve_type_descriptor(annotation=annotation,
                                             parameter_info=OptionInfo(**settings))


@pytest.mark.parametrize("settings", [
    {"parser": int}, {"min": 0}, {"max": 10}, {"clamp": True}, {"formats": ["%Y"]},
    {"case_sensitive": False}, {"allow_dash": True}, {"path_type": str}, {"resolve_path": True},
    {"exists": True}, {"mode": "r"}, {"encoding": "utf-8"}, {"prompt": True}, {"count": True},
], ids=repr)
def test_a_coercion_setting_keeps_typers_path(settings: dict[str, object]) -> None:
    assert fastparse.plain_kind(descriptor(int, **settings)) is None
    assert fastparse.plain_kind(descriptor(int)) == (int, False)


def test_an_attribute_unknown_here_keeps_typers_path() -> None:
    """A later Typer's `click_type=` (or anything else new) is not ignored."""
    plain = descriptor(str)
    assert fastparse.plain_kind(plain) == (str, False)
    plain.parameter_info.click_type = object()
    assert fastparse.plain_kind(plain) is None


@pytest.mark.parametrize(("annotation", "expected"), [
    (str, (str, False)), (int, (int, False)), (bool, (bool, False)), (float, (float, False)),
    (list[str], (str, True)), (list[int], (int, True)), (Path, None), (tuple[int, int], None),
    (list[Path], None), (bytes, None), (typer.FileText, None),
], ids=repr)
def test_plain_kinds(annotation: object, expected: tuple[type, bool] | None) -> None:
    assert fastparse.plain_kind(descriptor(annotation)) == expected


def test_a_parser_or_bounds_are_honoured_through_the_cli() -> None:
    app = typer.Typer(rich_markup_mode=None)

    @app.command()
    def main(double: Annotated[int, typer.Option(parser=lambda text: int(text) * 2)] = 0,
             port: Annotated[int, typer.Option(min=1, max=9)] = 1,
             level: Annotated[int, typer.Option(min=0, max=3, clamp=True)] = 0) -> None:
        typer.echo(f"{double} {port} {level}")

    assert runner.invoke(app, ["--double", "21", "--level", "7"]).stdout == "42 1 3\n"
    bad = runner.invoke(app, ["--port", "10"])
    assert (bad.exit_code, bad.stdout) == (2, "")
    assert "Input should be less than or equal to 9" in bad.stderr


# (a) when Typer's internals change, nothing is installed and Typer's path serves.

def _wrap_coerce(monkeypatch: pytest.MonkeyPatch) -> None:
    original = _coercion.RuntimeParam.coerce

    def coerce(self: Any, value: Any, param: Any, ctx: Any, strict: bool = False) -> Any:
        return original(self, value, param, ctx)

    monkeypatch.setattr(_coercion.RuntimeParam, "coerce", coerce)


def _add_runtime_field(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass(frozen=True)
    class RuntimeParam(_coercion.RuntimeParam):
        strict: bool = False

    monkeypatch.setattr(_coercion, "RuntimeParam", RuntimeParam)


def _add_descriptor_field(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass(frozen=True)
    class TypeDescriptor(_coercion.TypeDescriptor):
        strict: bool = False

    monkeypatch.setattr(_coercion, "TypeDescriptor", TypeDescriptor)


def _builder_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    def build_runtime_param(descriptor: Any, strict: bool = False) -> Any:
        return TYPERS_BUILDER(descriptor)

    monkeypatch.setattr(_coercion, "build_runtime_param", build_runtime_param)
    monkeypatch.setattr(core, HOOK, build_runtime_param)


def _builder_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, HOOK, lambda descriptor: TYPERS_BUILDER(descriptor))


def _hook_not_consulted(monkeypatch: pytest.MonkeyPatch) -> None:
    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            self._runtime_param = _coercion.build_runtime_param(self.type_descriptor)
        return self._runtime_param

    monkeypatch.setattr(core._TyperParameter, "get_runtime_param", get_runtime_param)


def _descriptor_renamed(monkeypatch: pytest.MonkeyPatch) -> None:
    renamed = _coercion.TypeDescriptor

    def resolve_type_descriptor(annotation: Any, parameter_info: Any) -> Any:
        return renamed(annotation=annotation, parameter_info=parameter_info,
                       file_annotation=file_coercion_annotation(annotation))

    for module in (_coercion, typer.main):
        monkeypatch.setattr(module, "resolve_type_descriptor", resolve_type_descriptor)
    monkeypatch.setattr(_coercion, "ResolvedType", renamed, raising=False)
    monkeypatch.delattr(_coercion, "TypeDescriptor")


def _accessor_renamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer's process_value, with get_runtime_param renamed to runtime_param."""
    parameter = core._TyperParameter

    def process_value(self: Any, ctx: Any, value: Any) -> Any:
        if not (self.type_descriptor.annotation is bool and isinstance(value, bool)):
            value = self.runtime_param().coerce(value, param=self, ctx=ctx)
        if self.required and self.value_is_missing(value):
            raise typer.BadParameter("missing", ctx=ctx, param=self)
        return value if self.callback is None else self.callback(ctx, self, value)

    monkeypatch.setattr(parameter, "runtime_param", parameter.get_runtime_param, raising=False)
    monkeypatch.delattr(parameter, "get_runtime_param")
    monkeypatch.setattr(parameter, "process_value", process_value)


CHANGES: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "RuntimeParam missing": lambda mp: mp.delattr(_coercion, "RuntimeParam"),
    "TypeDescriptor renamed": _descriptor_renamed,
    "runtime-parameter accessor renamed": _accessor_renamed,
    "RuntimeParam.coerce signature": _wrap_coerce,
    "RuntimeParam fields": _add_runtime_field,
    "TypeDescriptor fields": _add_descriptor_field,
    "build function signature": _builder_signature,
    "build function replaced": _builder_replaced,
    "hook no longer consulted": _hook_not_consulted,
}


@pytest.mark.parametrize("change", CHANGES, ids=str)
def test_a_changed_typer_gets_nothing_installed(change: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, HOOK, TYPERS_BUILDER)
    CHANGES[change](monkeypatch)
    hook_before = hook()
    assert fastparse.install() is False
    assert fastparse.active() is False
    assert hook() is hook_before
    code, stdout, stderr = run(["t", "a", "--count", " 5", "--ratio", "1e3", "--num", "1_0"])
    assert (code, stderr) == (0, "")
    assert values(stdout)["count"] == "5"
    assert values(stdout)["ratio"] == "1000.0"
    assert values(stdout)["num"] == "[10]"
    assert "PlainParam" not in served(stdout).values()
    bad = run(["--count", "x"])
    assert bad[0] == 2
    assert "Input should be a valid integer" in bad[2]


def test_install_on_an_unchanged_typer(typers_path: None) -> None:
    assert fastparse.install() is True
    assert fastparse.install() is True  # idempotent: wraps once
    assert hook().__closure__ is not None
    code, stdout, _ = run(["--count", "2"])
    assert code == 0
    assert set(served(stdout).values()) == {"PlainParam"}
    setattr(core, HOOK, TYPERS_BUILDER)  # the fixture checks it is off again


# (d) the plain path is really on, for every parameter of the real tool.

def _typer_params(command: Any) -> Iterator[tuple[str, Any]]:
    for param in command.params:
        if hasattr(param, "get_runtime_param"):
            yield f"{command.name} {param.name}", param
    for sub in getattr(command, "commands", {}).values():
        yield from _typer_params(sub)


def test_every_parameter_of_the_tool_takes_the_plain_path() -> None:
    assert fastparse.active(), "the plain path is not installed: Typer's internals changed?"
    params = dict(_typer_params(typer.main.get_command(retab_app)))
    assert len(params) > 50
    on_typers = sorted(name for name, param in params.items()
                       if not isinstance(hook()(param.type_descriptor),
                                         fastparse.PlainParam))
    assert on_typers == ["emulator port", "exec port"]  # declared with bounds (min=0, max=65535)


PROBE = """
import json, sys
from retab_cli.app import main
from retab_cli import fastparse
code = None
try:
    main(sys.argv[2:])
except SystemExit as exit_:
    code = exit_.code
with open(sys.argv[1], "w") as fh:
    json.dump({"code": code, "active": fastparse.active(),
               "pydantic": "pydantic" in sys.modules}, fh)
"""


@pytest.mark.parametrize(("args", "code"), [
    (["--debug", "--profile", "p", "partitions", "get", "--help"], 0),
    (["partitions", "list", "--limit", "0", "--json", "--status", "completed"], 2),
], ids=repr)
def test_a_real_process_parses_without_pydantic(args: list[str], code: int,
                                                tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(report), *args], capture_output=True,
                          text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "RETAB_CONFIG_DIR": str(tmp_path / "config"),
                               "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert json.loads(report.read_text()) == {"code": code, "active": True, "pydantic": False}, \
        done.stderr
