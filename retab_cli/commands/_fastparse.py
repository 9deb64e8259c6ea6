"""Plain coercion for plain parameters, without pydantic.

Typer 0.29 coerces every parameter through a pydantic TypeAdapter, built on first use:
importing pydantic and building the adapters costs ~70 ms per invocation, a quarter of
the `get --json` start-up budget (DESIGN §7). Every parameter of this tool is a str,
bool, int or float (or a list or Optional of those) with no bounds, so those are coerced
here directly; anything else still goes to Typer's own path. Typer is pinned to <0.30
because this hooks its runtime-parameter factory.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from typer import core
from typer._click.exceptions import BadParameter
from typer._coercion import RuntimeParam, TypeDescriptor

_SCALARS = (str, bool, int, float)
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return annotation


def plain_kind(descriptor: TypeDescriptor) -> tuple[type, bool] | None:
    """(scalar type, is a list) when this parameter can skip pydantic, else None."""
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or info.min is not None or info.max is not None:
        return None
    annotation = _without_none(descriptor.annotation)
    is_list = get_origin(annotation) is list
    if is_list:
        (annotation,) = get_args(annotation) or (None,)
    if annotation in _SCALARS:
        return annotation, is_list
    return None


def _coerce(kind: type, value: Any, param: Any, ctx: Any) -> Any:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value)
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise BadParameter(f"{text!r} is not a valid boolean.", ctx=ctx, param=param)
    if kind is str:
        return text
    try:
        return kind(text)
    except ValueError:
        noun = "integer" if kind is int else "number"
        raise BadParameter(f"{text!r} is not a valid {noun}.", ctx=ctx, param=param) from None


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    kind: type = str
    is_list: bool = False

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.is_list:
            return [_coerce(self.kind, item, param, ctx) for item in value]
        return _coerce(self.kind, value, param, ctx)


def install() -> None:
    """Route plain parameters around pydantic (idempotent)."""
    original: Callable[[TypeDescriptor], RuntimeParam] = getattr(  # noqa: B009
        core, "build_runtime_param")  # not re-exported by typer.core
    if getattr(original, "retab_plain", False):
        return

    def build(descriptor: TypeDescriptor) -> RuntimeParam:
        plain = plain_kind(descriptor)
        if plain is None:
            return original(descriptor)
        return PlainRuntimeParam(parameter_info=descriptor.parameter_info,
                                 annotation=descriptor.annotation, kind=plain[0],
                                 is_list=plain[1])

    build.retab_plain = True  # type: ignore[attr-defined]
    setattr(core, "build_runtime_param", build)  # noqa: B010
