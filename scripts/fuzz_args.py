#!/usr/bin/env python3
"""Fuzz the whole `retab` command tree by hand: many seeded cases, every failure reduced.

    .venv/bin/python scripts/fuzz_args.py --cases 10000 --seed 7
    .venv/bin/python scripts/fuzz_args.py --cases 2000 --seed 3 --json findings.jsonl

Starts its own emulator (fast speed factor, control API on) on a free loopback port,
runs each generated command line in-process (tests/fuzz_support.py: virtual time, no
real sleeps), groups failures by what broke, and reduces the first case of each group
to a minimal reproduction. Exit 0 when no failure was found, 1 otherwise. The suite's
bounded run is tests/test_fuzz_args.py; failures it already knows are listed there
(KNOWN) and reported here as known.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

import fuzz_support as fz  # noqa: E402
from emulator_support import start_emulator  # noqa: E402


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="command lines to try")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same cases)")
    parser.add_argument("--no-reduce", action="store_true", help="report cases as generated")
    parser.add_argument("--json", metavar="FILE", help="also write the findings as JSON lines")
    return parser.parse_args(argv)


def run(cases: int, seed: int, harness: fz.Harness) -> dict[str, tuple[fz.Case, list[str], int]]:
    """Failures by signature: the first case, its problems, and how many cases broke so."""
    tree = fz.command_tree()
    rng = random.Random(seed)
    found: dict[str, tuple[fz.Case, list[str], int]] = {}
    started = time.monotonic()
    for number in range(1, cases + 1):
        case = fz.generate(rng, tree)
        broken = fz.problems(case, harness.run(case), tree)
        if broken:
            key = fz.signature(broken)
            first, what, count = found.get(key, (case, broken, 0))
            found[key] = (first, what, count + 1)
        if number % 500 == 0:
            say(f"{number}/{cases} cases, {len(found)} kinds of failure, "
                f"{time.monotonic() - started:.0f}s")
    return found


def report(found: dict[str, tuple[fz.Case, list[str], int]], harness: fz.Harness,
           reduce: bool, json_path: str | None) -> None:
    tree = fz.command_tree()
    lines = []
    for key, (case, what, count) in sorted(found.items(), key=lambda kv: -kv[1][2]):
        small = fz.reduce(harness.run, case, tree) if reduce else case
        outcome = harness.run(small)
        known = fz.known_finding(small, outcome, fz.problems(small, outcome, tree))
        sys.stdout.write(f"\n== {key}  ({count} case(s)){'  KNOWN: ' + known if known else ''}\n"
                         f"   {small.shell()}\n   " + "\n   ".join(what) + "\n"
                         + (outcome.exception or outcome.stderr[-600:]) + "\n")
        lines.append({"signature": key, "count": count, "case": small.shell(),
                      "argv": list(small.argv), "problems": what, "known": known,
                      "exception": outcome.exception})
    if json_path:
        Path(json_path).write_text("".join(json.dumps(line) + "\n" for line in lines))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    emu = start_emulator(speed=10000.0)
    try:
        with tempfile.TemporaryDirectory(prefix="retab-fuzz-") as work:
            harness = fz.prepared_harness(emu, Path(work))
            started = time.monotonic()
            found = run(args.cases, args.seed, harness)
            say(f"{args.cases} cases (seed {args.seed}) in {time.monotonic() - started:.0f}s: "
                f"{sum(c for _, _, c in found.values())} failed, {len(found)} kinds")
            report(found, harness, not args.no_reduce, args.json)
    finally:
        emu.stop()
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
