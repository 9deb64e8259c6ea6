"""`retab partitions batch` against the local emulator (docs/design.md §10, issue 11's budgets).

1. Unthrottled (`RETAB_MAX_RPS=0`): 10,000 one-page documents (PDF and text) through a
   batch as a whole process, its wall time, peak RSS (budget: under 150 MiB) and
   requests per document (budget: at most 2.5, the batch's own count of requests sent,
   retries included; tests/batch checks it against the emulator's log). Journal
   overhead: in the same run, interleaved, the same pipeline without a journal (walk
   and hash, background creates four at a time, one open-ended watch with sweeps and
   the full fetch: `--baseline` below, the tool's engines wired without
   `retab_cli.batch.journal`), each on a fresh emulator database.
2. At the default budget (5 requests/s) against an emulator limited to the same rate
   (`--rate-limit 5/1`): 1,000 documents; requests per second over the batch's wall
   time (budget: within 10% of 5) and the 429s the emulator answered (budget: none).

Every measured process is started by bench_cli's launcher (wait4: its own CPU time and
peak RSS). Nothing asserts; a table is printed, and JSON on the last line.

    .venv/bin/python bench/bench_batch.py                       # --documents 10000 --paced 1000
    .venv/bin/python bench/bench_batch.py --documents 2000 --paced 0 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_cli import PY, Proc, check, emulator, run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

KEY = "invoice number"
MIB = 1024


def make_documents(root: Path, count: int) -> None:
    from batch.corpus import make_corpus  # the tests' generator: one invoice per page

    make_corpus(root, count, awkward=False, pages=1)


def batch_argv(docs: Path, journal: Path) -> list[str]:
    return [PY, "-m", "retab_cli", "partitions", "batch", str(docs), "--key", KEY,
            "--journal", str(journal), "-o", "json", "--no-progress"]


def measure(argv: list[str], env: dict[str, str], out: Path, what: str) -> tuple[Proc, Any]:
    proc = check(run(argv, env, stdout=str(out), timeout=3600), what)
    return proc, json.loads(out.read_text())


def unthrottled(tmp: Path, count: int, repeat: int, speed: float) -> dict[str, Any]:
    docs = tmp / "docs"
    make_documents(docs, count)
    results: dict[str, list[dict[str, Any]]] = {"batch": [], "baseline": []}
    for round_ in range(repeat):
        for name in ("batch", "baseline"):
            with emulator(tmp, speed=speed, db=tmp / f"emu-{name}-{round_}.sqlite3") as emu:
                env = emu.env(tmp / "home", max_rps="0")
                out = tmp / f"{name}-{round_}.json"
                argv = (batch_argv(docs, tmp / f"journal-{round_}.sqlite3") if name == "batch"
                        else [PY, __file__, "--baseline", str(docs)])
                proc, summary = measure(argv, env, out, name)
                results[name].append({"wall": proc.wall, "cpu": proc.cpu,
                                      "maxrss_mib": proc.maxrss_kib / MIB,
                                      "requests": summary["requests"],
                                      "completed": summary["documents"].get("completed", 0)})
    return {name: _median(rows) for name, rows in results.items()} | {"documents": count}


def paced(tmp: Path, count: int, speed: float) -> dict[str, Any]:
    docs = tmp / "paced-docs"
    make_documents(docs, count)
    with emulator(tmp, speed=speed, rate_limit="5/1", db=tmp / "emu-paced.sqlite3") as emu:
        env = emu.env(tmp / "home")  # RETAB_MAX_RPS unset: the default budget
        env.pop("RETAB_MAX_RPS", None)
        proc, summary = measure(batch_argv(docs, tmp / "journal-paced.sqlite3"), env,
                                tmp / "paced.json", "paced batch")
        log = emu.requests()
    return {"documents": count, "wall": proc.wall, "requests": summary["requests"],
            "rate": summary["requests"] / proc.wall, "emulator_429": sum(
                1 for r in log if r.get("status") == 429), "client_429": summary["rate_limited"],
            "logged": len(log), "completed": summary["documents"].get("completed", 0),
            "maxrss_mib": proc.maxrss_kib / MIB}


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]}


# ---- the baseline: the same creates and watch, no journal --------------------------------


async def baseline(docs: Path) -> dict[str, Any]:
    """Walk and hash, create in the background (4 at once, bytes bounded), one open-ended
    watch (sweeps from the start, the full object once): the batch's pipeline, unjournaled."""
    import os

    from retab_cli.batch.hashing import Digest, hash_document
    from retab_cli.batch.sending import batch_params, create_options
    from retab_cli.batch.sources import walk
    from retab_cli.client import Client
    from retab_cli.documents import Document
    from retab_cli.watch import Watcher

    options = create_options(batch_params(KEY, None, None, None, False, False))
    async with Client(os.environ["RETAB_API_BASE_URL"], os.environ["RETAB_API_KEY"],
                      budget=_budget()) as client:
        watcher = Watcher(client, [], open_ended=True, sweep_above=0)
        queue: asyncio.Queue[tuple[str, Path, Digest] | None] = asyncio.Queue(32)

        async def produce() -> None:
            for item in walk([str(docs)]):
                digest = await asyncio.to_thread(hash_document, item.path, item.relpath)
                assert isinstance(digest, Digest)
                await queue.put((item.relpath, item.path, digest))
            for _ in range(4):
                await queue.put(None)

        async def send() -> None:
            while (job := await queue.get()) is not None:
                relpath, path, digest = job
                doc = Document(label=relpath, filename=path.name, mime_type=digest.mime_type,
                               size=digest.size, path=path)
                body = await asyncio.to_thread(options.body, doc)
                result = await client.create(body, idempotency_key=digest.sha256)
                watcher.add(result.data["id"], result.data)

        async def follow() -> int:
            ended = 0
            async for event in watcher.run():
                if event.kind == "ended":
                    ended += 1
                    watcher.forget(event.run.id)
            return ended

        follower = asyncio.create_task(follow())
        await asyncio.gather(produce(), *(send() for _ in range(4)))
        watcher.no_more_runs()
        completed = await follower
        return {"documents": {"completed": completed}, "requests": client.budget.sent}


def _budget() -> Any:
    from retab_cli.budget import Budget

    return Budget(0)


# ---- the report ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--paced", type=int, default=1_000, help="0 to skip the 5 req/s part")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--speed", type=float, default=10.0, help="the emulator's --speed")
    parser.add_argument("--baseline", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        print(json.dumps(asyncio.run(baseline(Path(args.baseline)))))
        return
    with tempfile.TemporaryDirectory(prefix="retab-bench-batch-") as scratch:
        tmp = Path(scratch)
        figures: dict[str, Any] = {"unthrottled": unthrottled(tmp, args.documents, args.repeat,
                                                              args.speed)}
        if args.paced:
            figures["paced"] = paced(tmp, args.paced, args.speed)
    print(table(figures))
    print(json.dumps(figures))


def table(figures: dict[str, Any]) -> str:
    u = figures["unthrottled"]
    b, base = u["batch"], u["baseline"]
    n = u["documents"]
    lines = [
        f"unthrottled, {n} one-page documents (RETAB_MAX_RPS=0):",
        f"  batch     wall {b['wall']:.1f} s, cpu {b['cpu']:.1f} s, peak RSS {b['maxrss_mib']:.1f} "
        f"MiB ({_ok(b['maxrss_mib'] < 150)}), {b['requests'] / n:.2f} requests/document "
        f"({_ok(b['requests'] / n <= 2.5)}), {b['completed']} completed",
        f"  baseline  wall {base['wall']:.1f} s, cpu {base['cpu']:.1f} s, peak RSS "
        f"{base['maxrss_mib']:.1f} MiB, {base['requests'] / n:.2f} requests/document",
        f"  journal overhead: {b['wall'] / base['wall']:.2f}x the wall time "
        f"(+{b['wall'] - base['wall']:.1f} s, {(b['wall'] - base['wall']) / n * 1000:.2f} ms a "
        "document)"]
    if "paced" in figures:
        p = figures["paced"]
        lines += [f"paced, {p['documents']} documents at the default budget (5 requests/s), "
                  "emulator --rate-limit 5/1:",
                  f"  wall {p['wall']:.1f} s, {p['requests']} requests, {p['rate']:.2f} "
                  f"requests/s ({_ok(abs(p['rate'] - 5) <= 0.5)} within 10% of 5), "
                  f"429s: {p['emulator_429']} from the emulator ({_ok(p['emulator_429'] == 0)}), "
                  f"{p['requests'] / p['documents']:.2f} requests/document"]
    return "\n".join(lines)


def _ok(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()
