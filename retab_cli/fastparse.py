"""Plain command-line values coerced without pydantic, exactly as Typer would coerce them.

Typer 0.29 coerces every parameter through a pydantic TypeAdapter built on first use:
importing pydantic and building the adapters costs about 100 ms per invocation, a third
of the 300 ms start-up budget of `get --json`. `install()` wraps Typer's
runtime-parameter factory (`typer.core.build_runtime_param`, private) so that a
parameter of this tool's kinds (str, bool, int, float, a list of one of those; Typer has
already removed `Optional`) with no coercion setting (`parser=`, bounds, formats, path or
file options, anything this module does not know) gets a `PlainParam`.

`PlainParam` converts only values whose result is certain to equal Typer's: ASCII digits
for an int, plain decimals for a float, the twelve boolean words, any str. Every other
value, including every invalid one, goes to Typer's own runtime parameter, built on first
need, so results and error messages are Typer's by construction; only unusual input pays
for pydantic.

The private names are checked once, at install: if any is missing or has changed shape,
nothing is installed and Typer's own path (correct, slower) serves every parameter.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
from collections.abc import Callable
from typing import Any, get_args, get_origin

_HOOK = "build_runtime_param"
_MARK = "retab_plain"
_KINDS: tuple[type, ...] = (str, bool, int, float)
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
# Longer numbers are left to Typer: plenty for a CLI value, and far below the 4,300
# digits where int() starts refusing what pydantic accepts.
_MAX_DIGITS = 100
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
# No exponent, underscores, inf or nan: Typer's parser reads those, so they go to it.
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)", re.ASCII)
# ParameterInfo attributes that shape help, defaults, callbacks or completion only: any
# other attribute set away from its default (parser, min/max, clamp, formats, path and
# file options, a prompt, and whatever a later Typer adds) sends the parameter to Typer.
_NEUTRAL = frozenset({
    "default", "param_decls", "callback", "metavar", "expose_value", "is_eager", "envvar",
    "shell_complete", "autocompletion", "default_factory", "show_default", "show_choices",
    "show_envvar", "help", "hidden", "rich_help_panel", "allow_from_autoenv",
})

Builder = Callable[[Any], Any]
UNDECIDED = object()  # plain_value's answer when Typer's own runtime parameter must decide


def _number(kind: type, text: str) -> Any:
    pattern = _INT if kind is int else _FLOAT
    if len(text) > _MAX_DIGITS or not pattern.fullmatch(text):
        return UNDECIDED
    return kind(text)


def _boolean(text: str) -> Any:
    if not text.isascii():
        return UNDECIDED
    word = text.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return UNDECIDED  # '', ' true ' and the errors: Typer strips, then decides


def plain_value(kind: type, value: Any) -> Any:
    """`value` coerced to `kind` when the answer is certain to be Typer's, else `UNDECIDED`."""
    if type(value) is kind:  # a str for a str parameter, a default of the declared type
        return value
    if type(value) is not str:
        return UNDECIDED
    if kind is bool:
        return _boolean(value)
    return _number(kind, value)


class PlainParam:
    """Stands in for Typer's runtime parameter of one plain command parameter."""

    __slots__ = ("_build", "_descriptor", "_typers", "is_list", "kind")

    def __init__(self, descriptor: Any, kind: type, is_list: bool, build: Builder) -> None:
        self._descriptor = descriptor
        self._build = build
        self._typers: Any = None
        self.kind = kind
        self.is_list = is_list

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multiple = bool(param.multiple or param.nargs == -1)
        if value is None:
            return () if multiple else None  # as Typer's RuntimeParam.coerce does
        result = self._plain(value, multiple)
        if result is UNDECIDED:
            return self.typers().coerce(value, param=param, ctx=ctx)
        return result

    def typers(self) -> Any:
        """Typer's own runtime parameter for this one, built once, on first need."""
        if self._typers is None:
            self._typers = self._build(self._descriptor)
        return self._typers

    def _plain(self, value: Any, multiple: bool) -> Any:
        if not self.is_list:
            return UNDECIDED if multiple else plain_value(self.kind, value)
        if not multiple or not isinstance(value, (list, tuple)):
            return UNDECIDED
        items = [plain_value(self.kind, item) for item in value]
        return UNDECIDED if any(item is UNDECIDED for item in items) else items


@functools.cache
def _defaults(info_class: Callable[[], object]) -> dict[str, Any] | None:
    try:
        defaults: dict[str, Any] = vars(info_class())
    except Exception:  # a ParameterInfo that needs arguments: leave it all to Typer
        return None
    return defaults


def _only_neutral_settings(info: Any) -> bool:
    defaults = _defaults(info.__class__)
    if defaults is None:
        return False
    missing = object()
    return all(name in _NEUTRAL or defaults.get(name, missing) == value
               for name, value in vars(info).items())


def plain_kind(descriptor: Any) -> tuple[type, bool] | None:
    """(scalar type, is a list) when `PlainParam` can serve this parameter, else None."""
    if descriptor.file_annotation is not None:
        return None
    if not _only_neutral_settings(descriptor.parameter_info):
        return None
    annotation, is_list = descriptor.annotation, False
    if get_origin(annotation) is list and len(get_args(annotation)) == 1:
        (annotation,), is_list = get_args(annotation), True
    if any(annotation is kind for kind in _KINDS):
        return annotation, is_list
    return None


def _arguments(function: Any) -> list[str] | None:
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return None


def _names_used(function: Any) -> frozenset[str]:
    code = getattr(function, "__code__", None)
    return frozenset(code.co_names) if code is not None else frozenset()


def _fields(cls: Any) -> set[str] | None:
    if not dataclasses.is_dataclass(cls):
        return None
    return {field.name for field in dataclasses.fields(cls)}


class _Internals:
    """The parts of Typer the hook relies on (a plain class: a dataclass costs 1 ms)."""

    def __init__(self, builder: Builder, parameter: Any, descriptor: Any) -> None:
        self.builder = builder  # typer.core.build_runtime_param, Typer's own
        self.parameter = parameter  # typer.core._TyperParameter
        self.descriptor = descriptor  # typer._coercion.TypeDescriptor


def _typers_internals() -> _Internals | None:
    """Typer's internals, if every one the hook relies on has the shape it expects.

    Exact field sets: a new field could carry a coercion rule this module would ignore.
    """
    try:
        from typer import _coercion, core
    except ImportError:
        return None
    builder = getattr(core, _HOOK, None)
    parameter = getattr(core, "_TyperParameter", None)
    runtime = getattr(_coercion, "RuntimeParam", None)
    descriptor = getattr(_coercion, "TypeDescriptor", None)
    if builder is None:
        return None
    shapes_as_expected = (
        builder is getattr(_coercion, _HOOK, None)  # nobody else has replaced it
        and _arguments(builder) == ["descriptor"]
        and _fields(descriptor) == {"annotation", "parameter_info", "file_annotation"}
        and _fields(runtime) == {"annotation", "parameter_info"}
        and _arguments(getattr(runtime, "coerce", None)) == ["self", "value", "param", "ctx"]
        and {"get_runtime_param", "coerce"} <= _names_used(getattr(parameter, "process_value", None))
    )
    return _Internals(builder, parameter, descriptor) if shapes_as_expected else None


def _consults_hook(internals: _Internals) -> bool:
    """Whether Typer's parameters now get their runtime parameter from the hook."""
    from typer.models import OptionInfo

    try:
        descriptor = internals.descriptor(annotation=str, parameter_info=OptionInfo(),
                                          file_annotation=None)
        stand_in = types.SimpleNamespace(_runtime_param=None, type_descriptor=descriptor)
        made = internals.parameter.get_runtime_param(stand_in)
    except Exception:  # whatever a changed Typer raises here means: not as expected
        return False
    return isinstance(made, PlainParam)


def active() -> bool:
    """Whether the plain path is installed in Typer."""
    from typer import core

    return bool(getattr(getattr(core, _HOOK, None), _MARK, False))


def _plain_builder(original: Builder) -> Builder:
    def build(descriptor: Any) -> Any:
        plain = plain_kind(descriptor)
        if plain is None:
            return original(descriptor)
        return PlainParam(descriptor, *plain, build=original)

    setattr(build, _MARK, True)
    return build


def install() -> bool:
    """Route plain parameters around pydantic; True when the plain path is active.

    Idempotent. Leaves Typer as it is when its internals are not as expected.
    """
    if active():
        return True
    internals = _typers_internals()
    if internals is None:
        return False
    from typer import core

    setattr(core, _HOOK, _plain_builder(internals.builder))
    if _consults_hook(internals):
        return True
    setattr(core, _HOOK, internals.builder)
    return False
