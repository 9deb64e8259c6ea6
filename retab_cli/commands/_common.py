"""The command layer's boundary: `@command` (output options, Env, errors) and `run_app`.

A command is written as `def name(env: Env, <its own parameters>) -> int | None`.
`@command` declares the shared output options for Typer (-o/--json/-q/--fields, or
the subset given), builds the `Env` from them, passes options declared together as
a frozen dataclass (a parameter typed with one: its fields are the options, in
order, rebuilt into one object for the command), turns a `RetabError` raised while the
command parses its input into one error line and its exit code, and exits with the
code the command returns (what `env.run` gave back). Engines and the session are
imported when a command runs, so `--help` loads none of them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any

import typer

from retab_cli import errors
from retab_cli.commands._options import FieldsOpt, JsonOpt, OutputOpt, QuietOpt
from retab_cli.errors import RetabError, UsageError
from retab_cli.settings import GlobalOptions

OUTPUT_OPTIONS = ("output", "json", "quiet", "fields")
_DECLARED = {"output": (OutputOpt, None), "json": (JsonOpt, False), "quiet": (QuietOpt, False),
             "fields": (FieldsOpt, None)}
_CTX = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)

CommandFn = Callable[..., int | None]


def command(*, options: Sequence[str] = OUTPUT_OPTIONS, output: str | None = None,
            creating: bool = False) -> Callable[[CommandFn], Callable[..., None]]:
    """Make `fn(env, ...)` a Typer command with the shared output options (`options`, a
    subset of OUTPUT_OPTIONS, declared after its own), or a fixed `output` mode.
    `creating`: the command writes the profile it names (`auth login`), so it may be new."""

    def wrap(fn: CommandFn) -> Callable[..., None]:
        own = _own_parameters(fn)
        bundles = {p.name: p.annotation for p in own if _is_bundle(p.annotation)}
        flat = [q for p in own for q in (_fields(p.annotation) if p.name in bundles else [p])]
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                    annotation=_DECLARED[name][0], default=_DECLARED[name][1])
                  for name in options]

        @functools.wraps(fn)
        def run(ctx: typer.Context, **kwargs: Any) -> None:
            chosen = {name: kwargs.pop(name) for name in options}
            for name, bundle in bundles.items():
                kwargs[name] = bundle(**{f.name: kwargs.pop(f.name)
                                         for f in dataclasses.fields(bundle)})
            if output is not None:
                chosen["output"] = output
            raise typer.Exit(_invoke(fn, _global_options(ctx), chosen, kwargs,
                                     creating=creating))

        params = [_CTX, *flat, *shared]
        # Typer reads the parameters from the signature and the type hints.
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return wrap


def _own_parameters(fn: CommandFn) -> list[inspect.Parameter]:
    """The parameters after `env`, their annotations evaluated as Typer would (`env: Env`
    itself is typed for the checker only, so it is skipped)."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    # Keyword-only: Typer passes every value by name, and bundles may sit anywhere.
    return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                      annotation=eval(p.annotation, fn.__globals__)  # as inspect does
                      if isinstance(p.annotation, str) else p.annotation) for p in params]


def _is_bundle(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _fields(bundle: type) -> list[inspect.Parameter]:
    """A bundle's fields as keyword parameters, with their Annotated Typer declarations."""
    hints = typing.get_type_hints(bundle, include_extras=True)
    return [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                              default=f.default) for f in dataclasses.fields(bundle)]


def _invoke(fn: CommandFn, opts: GlobalOptions, chosen: dict[str, Any],
            kwargs: dict[str, Any], *, creating: bool = False) -> int:
    from retab_cli.session import Env

    env = Env(opts, quiet=bool(chosen.get("quiet")), creating=creating)
    try:
        env.choose_output(**chosen)
        code = fn(env, **kwargs)
    except RetabError as exc:
        return env.fail(exc)
    env.renderer.warn_unseen_fields()
    return errors.OK if code is None else code


def _global_options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()


# ---- the process boundary (Typer's own usage errors) -------------------------------


def run_app(app: Callable[..., Any], args: list[str]) -> int:
    """Run the app (a Typer app or its built command) with these args; the exit code."""
    # Typer exports none of these exception types (its vendored Click's).
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer._click.exceptions import UsageError as ClickUsageError

    from retab_cli.render import Renderer
    from retab_cli.render.streams import silence
    from retab_cli.running import Interrupted

    renderer = Renderer("json", explicit_json=_asks_json(args))
    try:
        result = app(args=args, prog_name="retab", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a bare group (`retab partitions`): its help, as --help
        renderer.line(exc.ctx.get_help())
        return errors.OK
    except ClickUsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "retab"
        renderer.error(UsageError(exc.format_message(),
                                  hint=f"run '{where} --help' for usage"))
        return errors.USAGE
    except RetabError as exc:
        renderer.error(exc)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt, Interrupted) as exc:
        renderer.warn("interrupted")
        return exc.code if isinstance(exc, Interrupted) else errors.SIGINT
    except ClickException as exc:
        renderer.error(UsageError(exc.format_message()))
        return errors.USAGE
    except BrokenPipeError:
        silence(sys.stdout)
        return errors.worst(renderer.reported)
    return result if isinstance(result, int) else errors.OK


def _asks_json(args: Sequence[str]) -> bool:
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--json" or arg.lower() in ("-ojson", "-ojsonl", "--output=json",
                                              "--output=jsonl"):
            return True
        if arg in ("-o", "--output") and i + 1 < len(args) and args[i + 1].lower() in (
                "json", "jsonl"):
            return True
    return False
