"""Mutation testing for one module: does the suite notice when the code is wrong?

    python scripts/mutate.py retab_cli/client.py [--tests tests/test_client.py ...]

Each mutant is one small AST change (a comparison or boolean operator swapped, a
constant changed, a `not` dropped, a condition negated, a returned value dropped, a
statement removed, min/max swapped ...). Mutants are applied one at a time to a
temporary copy of the package, never to the tree in place, and the module's tests
run against that copy with `-x -q -p no:cacheprovider` under a per-mutant timeout
(a mutant that hangs counts as killed). Prints the score and each surviving mutant
as `file:line: description`. `--root DIR` mutates another checkout (e.g. an older
commit from `git worktree add`) with the tests found there.

Lines marked `# pragma: no cover` are skipped: the code says they cannot run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Which tests cover which module (used when --tests is not given). Files missing from
# the checkout are left out, so an older commit can be measured with what it has.
DEFAULT_TESTS = {
    "retab_cli/client.py": ["tests/test_client.py", "tests/batch/test_request_overhead.py"],
    "retab_cli/budget.py": ["tests/test_budget.py"],
    "retab_cli/errors.py": ["tests/test_errors.py", "tests/test_client.py"],
    "retab_cli/urls.py": ["tests/test_urls.py", "tests/test_client.py", "tests/test_settings.py"],
    "retab_cli/watch.py": ["tests/test_watch.py", "tests/test_watch_sweep.py",
                           "tests/batch/test_follow.py"],
    "retab_cli/sweep.py": ["tests/test_watch_sweep.py", "tests/test_watch.py",
                           "tests/batch/test_follow.py"],
    "retab_cli/parsing.py": ["tests/test_parsing.py"],
    "retab_cli/statuses.py": ["tests/test_watch.py"],
}
COPIED = ("retab_cli", "tests", "docs", "pyproject.toml")  # tests read docs/ (the design)
PYTEST_FLAGS = ("-x", "-q", "-p", "no:cacheprovider")

_COMPARE_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt,
    ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_BINARY_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
    ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
}
_SYMBOL = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
    ast.Mod: "%", ast.Pow: "**", ast.BitOr: "|", ast.BitAnd: "&",
}
_REMOVABLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Raise, ast.Delete,
              ast.Break, ast.Continue)


@dataclass(frozen=True)
class Mutant:
    node: int  # position of the node in ast.walk order
    op: str  # which change, see _apply
    line: int
    description: str


@dataclass(frozen=True)
class Result:
    mutant: Mutant
    outcome: str  # "killed", "timeout" or "survived"


# ---- finding mutants ---------------------------------------------------------------


def _skipped_nodes(tree: ast.Module, source: str) -> set[int]:
    """ids of nodes never worth mutating: docstrings, annotations, TYPE_CHECKING
    blocks, `from __future__`, and lines marked `# pragma: no cover`."""
    lines = source.splitlines()
    skip: set[int] = set()

    def skip_tree(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and _is_docstring(body[0]):
            skip_tree(body[0])
        if isinstance(node, ast.arg | ast.AnnAssign):
            skip_tree(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            skip_tree(node.returns)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            skip_tree(node)
        if isinstance(node, ast.ImportFrom | ast.Import):
            skip_tree(node)
        if isinstance(node, ast.Module):
            # Removing a module-level name only breaks every import: nothing to learn.
            skip.update(id(stmt) for stmt in node.body if isinstance(stmt, ast.Assign | ast.AnnAssign))
        line = getattr(node, "lineno", 0)
        if line and "pragma: no cover" in lines[line - 1]:
            skip_tree(node)
    return skip


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
        and isinstance(node.value.value, str)


def _constant_changes(value: object) -> Iterator[tuple[str, str]]:
    if isinstance(value, bool):
        yield "flip", f"{value} -> {not value}"
    elif isinstance(value, int | float):
        yield "plus", f"{value!r} -> {value + 1!r}"
        yield "minus", f"{value!r} -> {value - 1!r}"
    elif isinstance(value, str):
        shown = value if len(value) <= 30 else value[:27] + "..."
        yield "string", f"{shown!r} -> {'XX' + shown + 'XX'!r}" if value else "'' -> 'XX'"


def _changes(node: ast.AST) -> Iterator[tuple[str, str]]:
    """(op, description) for every mutant of this one node."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            swapped = _COMPARE_SWAP[type(op)]
            yield f"compare:{i}", f"{_SYMBOL[type(op)]} -> {_SYMBOL[swapped]}"
    elif isinstance(node, ast.BoolOp):
        yield "boolop", "and -> or" if isinstance(node.op, ast.And) else "or -> and"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop_not", f"not {_short(node.operand)} -> {_short(node.operand)}"
    elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BINARY_SWAP:
        yield "binop", f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[_BINARY_SWAP[type(node.op)]]}"
    elif isinstance(node, ast.Constant):
        yield from _constant_changes(node.value)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
        yield "minmax", f"{node.func.id}(...) -> {'max' if node.func.id == 'min' else 'min'}(...)"
    if isinstance(node, ast.If | ast.While | ast.IfExp):
        yield "negate", f"condition {_short(node.test)} negated"
    if isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
        yield "return_none", f"return {_short(node.value)} -> return None"
    if isinstance(node, _REMOVABLE) and not _placeholder(node):
        yield "remove", f"statement removed: {_short(node)}"


def _placeholder(node: ast.stmt) -> bool:
    """A field declared without a value, or a `...` body: nothing to remove."""
    if isinstance(node, ast.AnnAssign):
        return node.value is None
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node.value.value is ...


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _short(node: ast.AST) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= 50 else text[:47] + "..."


def find_mutants(source: str) -> list[Mutant]:
    tree = ast.parse(source)
    skip = _skipped_nodes(tree, source)
    found = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        for op, description in _changes(node):
            found.append(Mutant(index, op, getattr(node, "lineno", 0), description))
    return found


# ---- applying one --------------------------------------------------------------------


def _apply_constant(node: ast.Constant, op: str) -> None:
    value = node.value
    if op == "flip":
        node.value = not value
    elif op == "string":
        assert isinstance(value, str)
        node.value = f"XX{value}XX"
    else:
        assert isinstance(value, int | float)
        node.value = value + (1 if op == "plus" else -1)


def _apply_in_place(node: ast.AST, op: str) -> None:
    if op.startswith("compare:"):
        assert isinstance(node, ast.Compare)
        i = int(op.split(":")[1])
        node.ops[i] = _COMPARE_SWAP[type(node.ops[i])]()
    elif op == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif op == "binop":
        assert isinstance(node, ast.BinOp | ast.AugAssign)
        node.op = _BINARY_SWAP[type(node.op)]()
    elif op == "minmax":
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        node.func.id = "max" if node.func.id == "min" else "min"
    elif op == "negate":
        assert isinstance(node, ast.If | ast.While | ast.IfExp)
        node.test = ast.UnaryOp(ast.Not(), node.test)
    elif op == "return_none":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(None)
    else:
        assert isinstance(node, ast.Constant)
        _apply_constant(node, op)


class _Replace(ast.NodeTransformer):
    """Swap one node for another wherever the parent holds it."""

    def __init__(self, old: ast.AST, new: ast.AST) -> None:
        self.old, self.new = old, new

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        return self.new if node is self.old else node


def mutate_source(source: str, mutant: Mutant) -> str:
    tree = ast.parse(source)
    node = next(n for i, n in enumerate(ast.walk(tree)) if i == mutant.node)
    if mutant.op == "remove":
        tree = _Replace(node, ast.copy_location(ast.Pass(), node)).visit(tree)
    elif mutant.op == "drop_not":
        assert isinstance(node, ast.UnaryOp)
        tree = _Replace(node, copy.deepcopy(node.operand)).visit(tree)
    else:
        _apply_in_place(node, mutant.op)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


# ---- running -------------------------------------------------------------------------

# Imported once by each worker before it forks a child per mutant: ~0.5 s of start-up
# per mutant saved. Never retab_cli itself, which every child imports fresh.
PRELOAD = ("pytest", "xdist", "pytest_timeout", "respx", "httpx", "pydantic", "typer", "rich",
           "fastapi", "uvicorn", "pypdf", "anyio", "asyncio", "json", "sqlite3")
_SERVE = "--serve"


def serve() -> int:
    """A worker, run inside its workspace: `tests timeout` requests on stdin, one outcome
    per line on stdout. Each request forks a child that runs pytest on the code as it is
    on disk now."""
    import importlib
    import importlib.util

    sys.path[0] = os.getcwd()  # the copy, not scripts/
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    spec = importlib.util.find_spec("retab_cli")
    _reply(f"ready {spec.origin if spec else ''}")
    for line in sys.stdin:
        timeout, *tests = line.split()
        _reply(_fork_pytest(tests, float(timeout)))
    return 0


def _reply(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _fork_pytest(tests: list[str], timeout: float) -> str:
    pid = os.fork()
    if pid == 0:  # the child: its own session, so a kill takes whatever it started
        os.setsid()
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(quiet, fd)
        code = 3
        try:
            import pytest

            code = int(pytest.main([*PYTEST_FLAGS, *tests]))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
        time.sleep(0.005)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "timeout"


class Workspace:
    """One private copy of the checkout per worker; the module is rewritten in the copy."""

    def __init__(self, root: Path, module: str, base: Path) -> None:
        for name in COPIED:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, base / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copy2(source, base / name)
        self.target = base / module
        self.original = self.target.read_text()
        # No bytecode: a rewritten module of the same size and second must not reuse a .pyc.
        env = {**os.environ, "PYTHONPATH": str(base), "PYTHONDONTWRITEBYTECODE": "1"}
        self._worker = subprocess.Popen([sys.executable, __file__, _SERVE], cwd=base, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self._read()
        origin = Path(ready.removeprefix("ready ").strip())
        if not origin.resolve().is_relative_to(base.resolve()):
            raise SystemExit(f"mutate: the tests would import {origin}, not the copy in {base}")

    def run(self, tests: list[str], source: str | None, timeout: float) -> str:
        self.target.write_text(source if source is not None else self.original)
        try:
            assert self._worker.stdin is not None
            self._worker.stdin.write(f"{timeout} {' '.join(tests)}\n")
            self._worker.stdin.flush()
            return self._read()
        finally:
            self.target.write_text(self.original)

    def close(self) -> None:
        assert self._worker.stdin is not None
        self._worker.stdin.close()
        self._worker.wait()

    def _read(self) -> str:
        assert self._worker.stdout is not None
        line = self._worker.stdout.readline()
        if not line:
            raise SystemExit("mutate: a worker died")
        return line.strip()


def run_all(root: Path, module: str, tests: list[str], mutants: list[Mutant], workers: int,
            timeout: float | None, progress: Callable[[Result], None]) -> tuple[list[Result], float]:
    """Every mutant, on `workers` private copies; also the baseline's duration."""
    with tempfile.TemporaryDirectory(prefix="mutate-") as scratch:
        spaces = [Workspace(root, module, _mkdir(Path(scratch) / str(n))) for n in range(workers)]
        try:
            started = time.monotonic()
            if spaces[0].run(tests, None, timeout or 600) != "survived":
                raise SystemExit(f"mutate: the tests fail before any mutation: {' '.join(tests)}")
            baseline = time.monotonic() - started
            free: queue.Queue[Workspace] = queue.Queue()
            for space in spaces:
                free.put(space)
            limit = timeout or max(20.0, 5 * baseline)
            source = spaces[0].original

            def one(mutant: Mutant) -> Result:
                space = free.get()
                try:
                    result = Result(mutant, space.run(tests, mutate_source(source, mutant), limit))
                finally:
                    free.put(space)
                progress(result)
                return result

            with ThreadPoolExecutor(workers) as pool:
                return list(pool.map(one, mutants)), baseline
        finally:
            for space in spaces:
                space.close()


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


# ---- the command ---------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("module", help="the file to mutate, relative to the root, e.g. retab_cli/client.py")
    parser.add_argument("--tests", nargs="+", help="test files to run (default: the module's mapping)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the checkout to copy and mutate (default: this one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 5x the baseline, >= 20)")
    parser.add_argument("--list", action="store_true", help="list the mutants without running them")
    return parser.parse_args(argv)


def _tests_for(args: argparse.Namespace) -> list[str]:
    if args.tests:
        return list(args.tests)
    mapped = [t for t in DEFAULT_TESTS.get(args.module, []) if (args.root / t).exists()]
    if not mapped:
        raise SystemExit(f"mutate: no tests mapped to {args.module}; pass --tests")
    return mapped


def _report(module: str, results: list[Result], elapsed: float, baseline: float) -> None:
    killed = sum(r.outcome != "survived" for r in results)
    timeouts = sum(r.outcome == "timeout" for r in results)
    score = 100.0 * killed / len(results) if results else 100.0
    out = sys.stdout
    out.write(f"\n{module}: {killed}/{len(results)} mutants killed ({score:.1f}%), "
              f"{timeouts} by timeout; {elapsed:.0f}s (baseline run {baseline:.1f}s)\n")
    for result in sorted(results, key=lambda r: (r.mutant.line, r.mutant.node)):
        if result.outcome == "survived":
            out.write(f"{module}:{result.mutant.line}: {result.mutant.description}\n")


def main(argv: list[str] | None = None) -> int:
    if sys.argv[1:] == [_SERVE]:
        return serve()
    args = _arguments(argv)
    root: Path = args.root.resolve()
    source = (root / args.module).read_text()
    mutants = sorted(find_mutants(source), key=lambda m: (m.line, m.node))
    if args.list:
        for mutant in mutants:
            sys.stdout.write(f"{args.module}:{mutant.line}: {mutant.description}\n")
        return 0
    tests = _tests_for(args)
    sys.stderr.write(f"{len(mutants)} mutants of {args.module}, tests: {' '.join(tests)}\n")

    def progress(result: Result) -> None:
        sys.stderr.write("." if result.outcome != "survived" else "S")
        sys.stderr.flush()

    started = time.monotonic()
    results, baseline = run_all(root, args.module, tests, mutants, args.workers, args.timeout, progress)
    sys.stderr.write("\n")
    _report(args.module, results, time.monotonic() - started, baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
