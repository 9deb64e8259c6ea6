"""Benchmarks of the `retab` command line against the local emulator (docs/design.md §7).

Every figure is a whole process (start-up included), timed with wait4 by a small
launcher process (which also gives its CPU time and peak RSS), with warm-up runs
first, commands interleaved round-robin, reported as a median next to a baseline
measured in the same run (`python -c pass`, `python -c "import typer"`, the official
SDK, bare httpx...), because this 2-core machine is shared and noisy. Each benchmark
starts its own emulator (`python -m retab_cli.emulator`, file database in a temporary
directory, control API on) and stops it. Nothing here asserts: the table says pass or
FAIL. Commands run with bytecode cached under a temporary PYTHONPYCACHEPREFIX (as an
installed wheel would have it) unless --no-pycache.

    .venv/bin/python bench/bench_cli.py                  # everything, ~5 minutes
    .venv/bin/python bench/bench_cli.py --quick          # smaller sizes, ~1.5 minutes
    .venv/bin/python bench/bench_cli.py startup get      # some of: startup get cancel
                                                         #   list chunks watch

The SDK comparison installs the PyPI package `retab` (the official SDK) into a
separate venv on first use (`--sdk-venv`, default /tmp/retab-sdk-venv), never into
the project's venv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_VENV_PY = ROOT / ".venv" / "bin" / "python"
PY = str(_VENV_PY if _VENV_PY.exists() else Path(sys.executable))
RETAB = str(Path(PY).parent / "retab")
KEY = "rt_test_emulator"
TERMINAL = {"completed", "failed", "cancelled"}
PYCACHE: Path | None = None  # set in main(); None keeps the caller's bytecode settings
BENCHMARKS = ("startup", "get", "cancel", "list", "chunks", "watch")


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    benchmark: str
    budget: str
    measured: str
    ratio: str
    verdict: str  # "pass", "FAIL", or "" for baselines and context rows
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, *args: str, note: str = "") -> None:
        self.rows.append(Row(*args, note=note))

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)
        self.details.append(text)

    def markdown(self) -> str:
        lines = [
            "| Benchmark | Budget | Measured (median) | Ratio to baseline | Result | Notes |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.benchmark} | {r.budget} | {r.measured} | {r.ratio} | {r.verdict} | {r.note} |"
            )
        return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    code: int
    wall: float
    user: float
    sys: float
    maxrss_kib: int
    lines: list[tuple[float, bytes]]  # (time.time() on arrival, line) when asked for
    stderr: str

    @property
    def cpu(self) -> float:
        return self.user + self.sys


# The measured process is started by this small launcher, not by the benchmark itself:
# Linux carries the parent's peak RSS over fork+exec into the child's ru_maxrss, so a
# child of this (large) process would report at least our own peak. The launcher's
# peak (~10 MiB) is the floor instead. It times the child itself, with wait4.
LAUNCHER = (
    "import json, os, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[2:])\n"
    "_, st, ru = os.wait4(p.pid, 0)\n"
    "wall = time.perf_counter() - t\n"
    "with open(sys.argv[1], 'w') as f:\n"
    "    json.dump({'code': os.waitstatus_to_exitcode(st), 'wall': wall, 'user': ru.ru_utime,\n"
    "               'sys': ru.ru_stime, 'maxrss': ru.ru_maxrss}, f)\n"
)


def run(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    stdin: bytes | None = None,
    stdout: str | None = None,  # None: /dev/null; "lines": read and timestamp; else a file path
    timeout: float = 600.0,
) -> Proc:
    """One whole process: its wall time, its own CPU time and peak RSS (wait4 in the launcher)."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as scratch:
        usage_file = Path(scratch) / "usage.json"
        out_file = open(stdout, "wb") if stdout not in (None, "lines") else None  # noqa: SIM115
        proc = subprocess.Popen(
            [PY, "-c", LAUNCHER, str(usage_file), *argv],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout == "lines" else (out_file or subprocess.DEVNULL),
            stderr=err,
            env=env,
            cwd=ROOT,
            start_new_session=True,  # so a timeout can kill the launcher and the command
        )
        lines: list[tuple[float, bytes]] = []
        threads = []
        if stdin is not None:
            threads.append(threading.Thread(target=_feed, args=(proc, stdin), daemon=True))
        if stdout == "lines":
            threads.append(threading.Thread(target=_collect, args=(proc, lines), daemon=True))
        for t in threads:
            t.start()
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            proc.wait()
        finally:
            timer.cancel()
        for t in threads:
            t.join(10)
        if out_file is not None:
            out_file.close()
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        if not usage_file.exists():
            raise RuntimeError(f"{argv[0]} did not run (launcher exit {proc.returncode}):\n{text[-2000:]}")
        u = json.loads(usage_file.read_text())
    return Proc(u["code"], u["wall"], u["user"], u["sys"], u["maxrss"], lines, text)


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass


def _collect(proc: subprocess.Popen[bytes], lines: list[tuple[float, bytes]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.time(), line))


def check(proc: Proc, what: str, codes: Sequence[int] = (0,)) -> Proc:
    if proc.code not in codes:
        raise RuntimeError(f"{what} exited {proc.code}:\n{proc.stderr[-2000:]}")
    return proc


def interleaved(
    commands: dict[str, tuple[Sequence[str], dict[str, str]]], runs: int, warmup: int
) -> dict[str, list[Proc]]:
    """Round-robin over the commands (so drifting machine load hits all alike)."""
    results: dict[str, list[Proc]] = {name: [] for name in commands}
    for round_ in range(warmup + runs):
        for name, (argv, env) in commands.items():
            proc = check(run(argv, env), name)
            if round_ >= warmup:
                results[name].append(proc)
    return results


def median_wall(procs: list[Proc]) -> float:
    return statistics.median(p.wall for p in procs)


def spread(procs: list[Proc]) -> str:
    walls = sorted(p.wall for p in procs)
    q = statistics.quantiles(walls, n=4) if len(walls) >= 4 else [walls[0], 0, walls[-1]]
    return f"IQR {q[0] * 1000:.0f}-{q[2] * 1000:.0f} ms, n={len(walls)}"


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any RETAB_* setting, config and cache in `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAB_")}
    env.update(
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        NO_COLOR="1",
    )
    if PYCACHE is not None:
        # Bytecode cached as in an installed wheel, but outside the source tree.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(extra)
    return env


# --------------------------------------------------------------------------- emulator


class Emulator:
    def __init__(self, tmp: Path, *, speed: float, rate_limit: str | None = None, db: Path | None = None):
        self.db = db or tmp / "emulator.sqlite3"
        self.log = open(tmp / "emulator.log", "ab")  # noqa: SIM115
        argv = [
            PY,
            "-m",
            "retab_cli.emulator",
            "--port",
            "0",
            "--db",
            str(self.db),
            "--speed",
            str(speed),
            "--control",
        ]
        if rate_limit:
            argv += ["--rate-limit", rate_limit]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT, env=base_env(tmp)
        )
        assert self.proc.stdout is not None
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(20)
        first = got[0].decode() if got else ""
        if not first.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {first!r} (log: {tmp / 'emulator.log'})")
        self.url = first.removeprefix("listening on ").strip()
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def control(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=120) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def requests(self) -> list[dict[str, object]]:
        entries = self.control("GET", "requests")
        assert isinstance(entries, list)
        return entries

    def clear_requests(self) -> None:
        self.control("DELETE", "requests")

    def env(self, home: Path, max_rps: str = "0") -> dict[str, str]:
        return base_env(home, RETAB_API_BASE_URL=self.url, RETAB_API_KEY=KEY, RETAB_MAX_RPS=max_rps)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@contextmanager
def emulator(tmp: Path, **kw: object) -> Iterator[Emulator]:
    emu = Emulator(tmp, **kw)  # type: ignore[arg-type]
    try:
        yield emu
    finally:
        emu.stop()


def write_docs(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"invoice-{n:05d}.txt"
        path.write_text(f"Invoice number: INV-{n:05d}\nTotal: {n}.00 EUR\n")
        paths.append(str(path))
    return paths


def create_runs(emu: Emulator, home: Path, docs: list[str], *, stuck: bool) -> list[str]:
    """`retab partitions create --background -q` over the docs, unlimited budget; the ids."""
    if stuck:
        emu.control("POST", "next-create", {"outcome": "stuck", "times": len(docs)})
    proc = check(
        run(
            [RETAB, "partitions", "create", *docs, "--key", "invoice number", "--background", "-q"],
            emu.env(home),
            stdout=str(home / "created.txt"),
        ),
        "create --background",
    )
    del proc
    ids = (home / "created.txt").read_text().split()
    if len(ids) != len(docs):
        raise RuntimeError(f"created {len(ids)} runs, wanted {len(docs)}")
    return ids


# --------------------------------------------------------------------------- 1. start-up


def bench_startup(rep: Report, tmp: Path, runs: int, warmup: int) -> None:
    env = base_env(tmp)
    commands = {
        "python -c pass": ([PY, "-c", "pass"], env),
        'python -c "import typer"': ([PY, "-c", "import typer"], env),
        "retab --version": ([RETAB, "--version"], env),
        "retab --help": ([RETAB, "--help"], env),
        "retab partitions --help": ([RETAB, "partitions", "--help"], env),
    }
    res = interleaved(commands, runs, warmup)
    base = median_wall(res["python -c pass"])
    typer_ = median_wall(res['python -c "import typer"'])
    rep.add("baseline: `python -c pass`", "", ms(base), "1.00×", "", note=spread(res["python -c pass"]))
    rep.add(
        'baseline: `python -c "import typer"`',
        "",
        ms(typer_),
        f"{typer_ / base:.2f}× pass",
        "",
        note=spread(res['python -c "import typer"']),
    )
    for name, budget in (
        ("retab --version", 0.150),
        ("retab --help", 0.150),
        ("retab partitions --help", 0.250),
    ):
        m = median_wall(res[name])
        rep.add(
            f"`{name}`",
            f"< {ms(budget)}",
            ms(m),
            f"{m / base:.2f}× pass, {m / typer_:.2f}× typer",
            verdict(m < budget),
            note=spread(res[name]),
        )


# --------------------------------------------------------------------------- 2. get vs SDK

SDK_CODE = (
    "import os, sys\n"
    "from retab import Retab\n"
    "Retab(api_key=os.environ['RETAB_API_KEY'], base_url=os.environ['RETAB_API_BASE_URL'])"
    ".partitions.get(sys.argv[1])\n"
)
HTTPX_CODE = (
    "import os, sys, httpx\n"
    "r = httpx.get(os.environ['RETAB_API_BASE_URL'] + '/v1/partitions/' + sys.argv[1],\n"
    "              headers={'Authorization': 'Bearer ' + os.environ['RETAB_API_KEY']})\n"
    "r.raise_for_status(); r.json()\n"
)


def sdk_python(venv: Path, rep: Report) -> str | None:
    """The SDK venv's python, creating the venv and installing `retab` on first use."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import retab"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    rep.say(f"installing the official SDK (PyPI `retab`) into {venv} ...")
    try:
        subprocess.run([PY, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "retab"], check=True, capture_output=True, timeout=600
        )
    except (subprocess.SubprocessError, OSError) as exc:
        rep.say(f"could not install the SDK: {exc}")
        return None
    return str(python) if subprocess.run(probe, capture_output=True).returncode == 0 else None


def bench_get(rep: Report, tmp: Path, runs: int, warmup: int, sdk_venv: Path) -> None:
    sdk = sdk_python(sdk_venv, rep)
    with emulator(tmp, speed=100) as emu:
        env = emu.env(tmp)
        doc = tmp / "two-invoices.txt"
        doc.write_text("Invoice number: INV-1\nTotal: 1.00\n\fInvoice number: INV-2\nTotal: 2.00\n")
        check(
            run(
                [RETAB, "partitions", "create", str(doc), "--key", "invoice number", "-q"],
                env,
                stdout=str(tmp / "id.txt"),
            ),
            "create",
        )
        run_id = (tmp / "id.txt").read_text().strip()
        commands = {
            "python -c pass": ([PY, "-c", "pass"], env),
            "retab get --json": ([RETAB, "partitions", "get", run_id, "--json"], env),
            "httpx": ([PY, "-c", HTTPX_CODE, run_id], env),
        }
        sdk_label = None
        if sdk is not None:
            version = subprocess.run(
                [sdk, "-c", "import importlib.metadata as m; print(m.version('retab'))"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            probe = run([sdk, "-c", SDK_CODE, run_id], env)
            if probe.code == 0:
                sdk_label = f"SDK retab {version}"
                commands[sdk_label] = ([sdk, "-c", SDK_CODE, run_id], env)
            else:
                rep.say(f"the SDK could not do the get:\n{probe.stderr[-1500:]}")
        res = interleaved(commands, runs, warmup)
    base = median_wall(res["python -c pass"])
    tool = median_wall(res["retab get --json"])
    hx = median_wall(res["httpx"])
    if sdk_label is not None:
        sdk_m = median_wall(res[sdk_label])
        rep.add(
            f"baseline: official SDK (`{sdk_label}`): `from retab import Retab` + "
            "`.partitions.get(id)`, fresh process",
            "",
            ms(sdk_m),
            f"{sdk_m / base:.2f}× pass",
            "",
            note=spread(res[sdk_label]),
        )
    rep.add(
        'reference: `python -c "import httpx; httpx.get(...)"`',
        "",
        ms(hx),
        f"{hx / base:.2f}× pass",
        "",
        note=spread(res["httpx"]) + ("" if sdk_label else "; stand-in for the SDK, which failed"),
    )
    ok = tool < 0.300
    ratio = f"{tool / base:.2f}× pass, {tool / hx:.2f}× httpx"
    budget = "< 300 ms"
    if sdk_label is not None:
        ratio = f"**{tool / sdk_m:.2f}× SDK**, {ratio}"
        budget += ", ≤ 0.4× SDK"
        ok = ok and tool / sdk_m <= 0.4
    rep.add(
        "`retab partitions get ID --json` (2 chunks)",
        budget,
        ms(tool),
        ratio,
        verdict(ok),
        note=spread(res["retab get --json"]),
    )


# --------------------------------------------------------------------------- 3. cancel

CANCEL_FLOOR_CODE = (
    "import asyncio, os, sys, httpx\n"
    "async def main():\n"
    "    ids = sys.stdin.read().split()\n"
    "    sem = asyncio.Semaphore(16)\n"
    "    async with httpx.AsyncClient(base_url=os.environ['RETAB_API_BASE_URL'],\n"
    "            headers={'Authorization': 'Bearer ' + os.environ['RETAB_API_KEY']}) as c:\n"
    "        async def one(i):\n"
    "            async with sem:\n"
    "                (await c.post(f'/v1/partitions/{i}/cancel')).raise_for_status()\n"
    "        await asyncio.gather(*(one(i) for i in ids))\n"
    "asyncio.run(main())\n"
)


def statuses(entries: list[dict[str, object]], method: str, suffix: str = "") -> dict[object, int]:
    counts: dict[object, int] = {}
    for e in entries:
        if e.get("method") == method and str(e.get("path", "")).endswith(suffix):
            counts[e.get("status")] = counts.get(e.get("status"), 0) + 1
    return counts


def bench_cancel(rep: Report, tmp: Path, n: int, rounds: int, limited_n: int, rate: int) -> None:
    docs = write_docs(tmp / "docs", max(2 * n, limited_n))
    db = tmp / "emulator.sqlite3"
    tool_runs: list[Proc] = []
    floor_runs: list[Proc] = []
    bad: dict[object, int] = {}
    with emulator(tmp, speed=1, db=db) as emu:
        env = emu.env(tmp, max_rps="0")
        for _ in range(rounds):
            ids = create_runs(emu, tmp, docs[: 2 * n], stuck=True)
            mine, floor = ids[:n], ids[n:]
            emu.clear_requests()
            tool_runs.append(
                check(
                    run([RETAB, "partitions", "cancel", "-", "-q"], env, stdin="\n".join(mine).encode()),
                    "cancel -",
                )
            )
            for status, count in statuses(emu.requests(), "POST", "/cancel").items():
                if status != 200:
                    bad[status] = bad.get(status, 0) + count
            floor_runs.append(
                check(
                    run([PY, "-c", CANCEL_FLOOR_CODE], env, stdin="\n".join(floor).encode()),
                    "httpx cancel floor",
                )
            )
        limited_ids = create_runs(emu, tmp, docs[:limited_n], stuck=True)
    tool = median_wall(tool_runs)
    floor_m = median_wall(floor_runs)
    rep.add(
        f"baseline: bare httpx.AsyncClient, 16 in flight, {n} cancels",
        "",
        f"{floor_m:.2f} s",
        "",
        "",
        note=f"n={len(floor_runs)}",
    )
    rep.add(
        f"`cancel -` {n} ids, `RETAB_MAX_RPS=0`",
        "< 10 s",
        f"{tool:.2f} s",
        f"{tool / floor_m:.2f}× httpx floor",
        verdict(tool < 10 and not bad),
        note=f"{n / tool:.0f} cancels/s; n={len(tool_runs)} (fresh stuck runs each)"
        + (f"; non-200 answers: {bad}" if bad else ""),
    )

    # Same database, now behind the emulator's own limit equal to the tool's budget.
    with emulator(tmp, speed=1, db=db, rate_limit=f"{rate}/1") as emu:
        emu.clear_requests()
        proc = check(
            run(
                [RETAB, "partitions", "cancel", "-", "-q"],
                emu.env(tmp, max_rps=str(rate)),
                stdin="\n".join(limited_ids).encode(),
            ),
            "cancel - (rate-limited)",
        )
        entries = emu.requests()
    counts = statuses(entries, "POST", "/cancel")
    limited = sum(1 for e in entries if e.get("status") == 429)
    ok_count = counts.get(200, 0)
    throughput = ok_count / proc.wall
    rep.add(
        f"`cancel -` {limited_ids.__len__()} ids, emulator `--rate-limit {rate}/1`, `RETAB_MAX_RPS={rate}`",
        "0 × 429",
        f"{limited} × 429",
        "",
        verdict(limited == 0),
        note=f"{len(entries)} requests logged; statuses {dict(sorted(counts.items(), key=str))}",
    )
    rep.add(
        "  … throughput (cancels / process wall time)",
        f"{rate}/s ± 10%",
        f"{throughput:.2f}/s",
        f"{throughput / rate:.3f}× budget",
        verdict(abs(throughput / rate - 1) <= 0.10),
        note=f"wall {proc.wall:.2f} s incl. start-up; single run",
    )


# --------------------------------------------------------------------------- 4. list --all


def bench_list(rep: Report, tmp: Path, count: int, runs: int) -> None:
    with emulator(tmp, speed=1) as emu:
        started = time.perf_counter()
        emu.control("POST", "seed", {"count": count})
        rep.say(f"seeded {count} partitions in {time.perf_counter() - started:.2f} s")
        env = emu.env(tmp, max_rps="0")
        res: dict[str, list[Proc]] = {"jsonl": [], "json": [], "typer": []}
        out = tmp / "list.out"
        for round_ in range(runs + 1):  # round 0 is the warm-up
            for fmt in ("jsonl", "json"):
                p = check(run([RETAB, "partitions", "list", "--all", "-o", fmt], env, stdout=str(out)), fmt)
                if round_ == 0:
                    text = out.read_bytes()
                    got = text.count(b"\n") if fmt == "jsonl" else len(json.loads(text))
                    if got != count:
                        raise RuntimeError(f"list --all -o {fmt} gave {got} items, wanted {count}")
                else:
                    res[fmt].append(p)
            p = check(run([PY, "-c", "import typer"], env), "typer")
            if round_:
                res["typer"].append(p)
    typer_rss = statistics.median(p.maxrss_kib for p in res["typer"]) / 1024
    typer_wall = median_wall(res["typer"])
    rep.add(
        'baseline: `python -c "import typer"` peak RSS',
        "",
        f"{typer_rss:.1f} MiB",
        "",
        "",
        note=f"{ms(typer_wall)}",
    )
    for fmt in ("jsonl", "json"):
        rss = statistics.median(p.maxrss_kib for p in res[fmt]) / 1024
        wall = median_wall(res[fmt])
        cpu = statistics.median(p.cpu for p in res[fmt])
        rep.add(
            f"`list --all -o {fmt}` over {count:,} partitions, `RETAB_MAX_RPS=0`: peak RSS",
            "< 100 MiB" if fmt == "jsonl" else "(comparison)",
            f"{rss:.1f} MiB",
            f"{rss / typer_rss:.2f}× typer",
            verdict(rss < 100) if fmt == "jsonl" else "",
            note=f"wall {wall:.2f} s ({count / wall:,.0f} rows/s), CPU {cpu:.2f} s; n={len(res[fmt])}",
        )


# --------------------------------------------------------------------------- 5. 5,000 chunks


def bench_chunks(rep: Report, tmp: Path, pages: int, runs: int, warmup: int) -> None:
    big = tmp / "many-invoices.txt"
    big.write_text(
        "\f".join(f"Invoice number: INV-{n:05d}\nTotal: {n}.00 EUR\n" for n in range(1, pages + 1))
    )
    small = tmp / "two-invoices.txt"
    small.write_text("Invoice number: INV-1\n\fInvoice number: INV-2\n")
    with emulator(tmp, speed=2000) as emu:
        env = emu.env(tmp)
        ids = {}
        for name, doc in (("big", big), ("small", small)):
            started = time.perf_counter()
            check(
                run(
                    [RETAB, "partitions", "create", str(doc), "--key", "invoice number", "-q"],
                    env,
                    stdout=str(tmp / "id.txt"),
                    timeout=300,
                ),
                f"create {name}",
            )
            ids[name] = (tmp / "id.txt").read_text().strip()
            rep.say(f"synchronous create of {doc.name}: {time.perf_counter() - started:.2f} s")
        check(
            run([RETAB, "partitions", "get", ids["big"], "--json"], env, stdout=str(tmp / "big.json")), "get"
        )
        chunks = len(json.loads((tmp / "big.json").read_text())["output"])
        if chunks != pages:
            raise RuntimeError(f"the big run has {chunks} chunks, wanted {pages}")
        commands = {
            "python -c pass": ([PY, "-c", "pass"], env),
            "small json": ([RETAB, "partitions", "get", ids["small"], "--json"], env),
            "big json": ([RETAB, "partitions", "get", ids["big"], "--json"], env),
            "big table": ([RETAB, "partitions", "get", ids["big"], "-o", "table"], env),
        }
        res = interleaved(commands, runs, warmup)
    base = median_wall(res["python -c pass"])
    small_m = median_wall(res["small json"])
    rep.add(
        "baseline: `get ID --json` of a 2-chunk run",
        "",
        ms(small_m),
        f"{small_m / base:.2f}× pass",
        "",
        note=spread(res["small json"]),
    )
    for name, label, budget in (("big json", "--json", 0.300), ("big table", "-o table", 1.0)):
        m = median_wall(res[name])
        cpu = statistics.median(p.cpu for p in res[name])
        rep.add(
            f"`get ID {label}`, {pages:,} chunks, stdout to /dev/null",
            f"< {ms(budget)}",
            ms(m),
            f"{m / small_m:.2f}× 2-chunk get, {m / base:.2f}× pass",
            verdict(m < budget),
            note=f"{spread(res[name])}; CPU {ms(cpu)}",
        )


# --------------------------------------------------------------------------- 6. watching


def bench_watch(rep: Report, tmp: Path, n: int, rate: float, speed: float) -> None:
    docs = write_docs(tmp / "docs", n)
    db = tmp / "emulator.sqlite3"
    with emulator(tmp, speed=speed, db=db) as emu:
        started = time.perf_counter()
        ids = create_runs(emu, tmp, docs, stuck=False)
        rep.say(f"created {n} background runs in {time.perf_counter() - started:.2f} s")
        emu.clear_requests()
        watch_start = time.time()
        proc = check(
            run(
                [RETAB, "partitions", "watch", "-", "-o", "jsonl"],
                emu.env(tmp, max_rps=f"{rate:g}"),
                stdin="\n".join(ids).encode(),
                stdout="lines",
                timeout=900,
            ),
            "watch",
            codes=(0,),
        )
        entries = emu.requests()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        done_at = dict(conn.execute("SELECT id, done_us FROM partitions").fetchall())
        created = dict(conn.execute("SELECT id, created_us FROM partitions").fetchall())
    reported: dict[str, float] = {}  # first line with a terminal status (may be the cheap view)
    last_line: dict[str, float] = {}  # the last line per id: the final, full object
    for at, line in proc.lines:
        obj = json.loads(line)
        if obj.get("status") in TERMINAL and obj["id"] not in reported:
            reported[obj["id"]] = at
        last_line[obj["id"]] = at
    finals = sorted(last_line[i] - done_at[i] / 1e6 for i in ids if i in last_line)
    missing = [i for i in ids if i not in reported]
    gets = sum(
        1 for e in entries if e.get("method") == "GET" and str(e.get("path", "")).startswith("/v1/partitions")
    )
    others = len(entries) - gets
    limited = sum(1 for e in entries if e.get("status") == 429)
    allowance = rate * proc.wall
    per_run = n / rate
    delays, over = [], 0
    for i in ids:
        if i not in reported:
            continue
        end = done_at[i] / 1e6
        delay = reported[i] - end
        delays.append(delay)
        elapsed = end - watch_start  # how long the watch had followed it when it ended
        interval = max(min(max(elapsed / 10, 1.0), 10.0), per_run)
        if delay > max(2 * interval, per_run):
            over += 1
    durations = [(done_at[i] - created[i]) / 1e6 for i in ids]
    delays.sort()
    p95 = delays[int(0.95 * (len(delays) - 1))] if delays else float("nan")
    rep.say(
        f"runs lasted {min(durations):.1f}-{max(durations):.1f} s (speed {speed:g}); watch wall "
        f"{proc.wall:.1f} s; {gets} GETs, {others} other requests, {limited} × 429"
    )
    rep.add(
        f"watch {n} runs (`watch - -o jsonl`, `RETAB_MAX_RPS={rate:g}`): requests sent",
        "at most rate × wall + 10%",
        f"{gets} GETs",
        f"{gets / allowance:.3f}× allowance ({allowance:.0f})",
        # Sweeping list pages (docs/design.md §4) spends less than the allowance: under is good.
        verdict(gets / allowance <= 1.10 and not others),
        note=f"wall {proc.wall:.1f} s; {limited} × 429; other requests {others}",
    )
    rep.add(
        "  … CPU time (user+sys) / wall",
        "a small fraction",
        f"{proc.cpu:.2f} s CPU",
        f"{proc.cpu / proc.wall:.3f} of wall",
        verdict(proc.cpu / proc.wall < 0.10),
        note=f"peak RSS {proc.maxrss_kib / 1024:.1f} MiB; 'small' read as < 10%",
    )
    allowance_s = 2 * max(1.0, per_run)
    rep.add(
        "  … delay from each run's `done_at` to its terminal line on stdout",
        f"≤ max(2 intervals, N/rate) = {allowance_s:.0f} s nominal",
        f"{statistics.median(delays):.1f} s" if delays else "n/a",
        f"p95 {p95:.1f} s, max {max(delays, default=float('nan')):.1f} s",
        verdict(over == 0 and not missing),
        note=f"{over} of {len(delays)} over; {len(missing)} never reported; interval = "
        f"max(clamp(elapsed/10, 1, 10), N/rate={per_run:g} s), jitter ignored",
    )
    if finals:
        rep.add(
            "  … delay from `done_at` to the last line per id (the full object)",
            "(context)",
            f"{statistics.median(finals):.1f} s",
            f"p95 {finals[int(0.95 * (len(finals) - 1))]:.1f} s, max {finals[-1]:.1f} s",
            "",
            note=f"{len(proc.lines)} lines for {n} runs",
        )


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help=f"any of {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs")
    parser.add_argument("--runs", type=int, help="timed runs per command (default 15, 7 with --quick)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per command first (default 3)")
    parser.add_argument(
        "--no-pycache",
        action="store_true",
        help="keep the caller's bytecode settings (by default the commands run with bytecode cached "
        "under a temporary PYTHONPYCACHEPREFIX, as an installed wheel would, whatever "
        "PYTHONDONTWRITEBYTECODE says)",
    )
    parser.add_argument("--sdk-venv", type=Path, default=Path("/tmp/retab-sdk-venv"))
    parser.add_argument(
        "--watch-rate",
        type=float,
        default=20.0,
        help="RETAB_MAX_RPS for the watch benchmark (default 20; the tool's default is 5)",
    )
    args = parser.parse_args()
    unknown = set(args.benchmarks) - {*BENCHMARKS, "all"}
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}"
        )
    chosen = (
        BENCHMARKS
        if not args.benchmarks or "all" in args.benchmarks
        else tuple(b for b in BENCHMARKS if b in args.benchmarks)
    )
    quick = args.quick
    runs = args.runs or (7 if quick else 15)
    warmup = args.warmup
    rep = Report()
    steps: dict[str, Callable[[Path], None]] = {
        "startup": lambda t: bench_startup(rep, t, runs, warmup),
        "get": lambda t: bench_get(rep, t, runs, warmup, args.sdk_venv),
        "cancel": lambda t: bench_cancel(
            rep,
            t,
            n=200 if quick else 1000,
            rounds=1 if quick else 3,
            limited_n=100 if quick else 400,
            rate=20,
        ),
        "list": lambda t: bench_list(rep, t, count=5000 if quick else 50_000, runs=2 if quick else 3),
        "chunks": lambda t: bench_chunks(rep, t, pages=5000, runs=runs, warmup=warmup),
        "watch": lambda t: bench_watch(
            rep, t, n=100 if quick else 500, rate=args.watch_rate, speed=0.25 if quick else 0.1
        ),
    }
    global PYCACHE
    pycache_dir = None if args.no_pycache else tempfile.TemporaryDirectory(prefix="retab-bench-pycache-")
    PYCACHE = None if pycache_dir is None else Path(pycache_dir.name)
    began = time.perf_counter()
    failed = []
    for name in chosen:
        rep.say(f"== {name}")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"retab-bench-{name}-") as tmp:
            try:
                steps[name](Path(tmp))
            except Exception as exc:  # report and go on with the next benchmark
                failed.append(name)
                rep.add(name, "", "error", "", "**ERROR**", note=str(exc).splitlines()[0][:200])
                rep.say(f"{name} failed: {exc}")
        rep.say(f"   {time.perf_counter() - t0:.0f} s")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"retab CLI benchmarks, {when}, Python {platform.python_version()}, {os.cpu_count()} cores "
        f"(shared machine), {'--quick, ' if quick else ''}{runs} timed runs after {warmup} warm-up; "
        f"bytecode {'as the caller set it' if PYCACHE is None else 'cached (PYTHONPYCACHEPREFIX)'}; "
        f"total {time.perf_counter() - began:.0f} s\n"
    )
    print(rep.markdown())
    if pycache_dir is not None:
        pycache_dir.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
