"""Argument fuzzing of the whole command tree: a bounded, seeded run in the suite.

Command lines are generated from the real Typer tree (tests/fuzz_support.py) and run
in-process against an emulator of our own (fast speed factor, control API on), with
virtual time: no case sleeps for real and none can end the test process. The
property: no exception but SystemExit, no traceback, an exit code in 0-8, stdout
valid for the chosen mode on exit 0, no raw control character on either stream.

Failures already found are in `fuzz_support.KNOWN`: the random run tolerates them
(and only them), and each one's minimal reproduction runs below as a strict xfail,
so a fix flips it to XPASS: then drop the entry from KNOWN.

`RETAB_FUZZ_CASES=3000 RETAB_FUZZ_SEED=5 pytest tests/test_fuzz_args.py` for a longer
run here; scripts/fuzz_args.py for a long run with every failure reduced.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from emulator_support import Emulator, start_emulator
from fuzz_support import (
    FIXED,
    KNOWN,
    Case,
    Harness,
    Known,
    Outcome,
    Tree,
    command_tree,
    find_command,
    generate,
    known_finding,
    prepared_harness,
    problems,
    reduce,
    signature,
)

CASES = int(os.environ.get("RETAB_FUZZ_CASES", "300"))
SEED = int(os.environ.get("RETAB_FUZZ_SEED", "20261"))


@pytest.fixture(scope="module")
def fuzz_emulator() -> Iterator[Emulator]:
    """An emulator for this module alone: cases cancel and delete whatever they find."""
    emu = start_emulator(speed=10000.0)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def harness(fuzz_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Harness:
    return prepared_harness(fuzz_emulator, tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def tree() -> Tree:
    return command_tree()


def cases(count: int, seed: int, tree: Tree) -> list[Case]:
    rng = random.Random(seed)
    return [generate(rng, tree) for _ in range(count)]


# ---- the generator covers the tree ---------------------------------------------------


def test_the_tree_is_walked_from_the_app(tree: Tree) -> None:
    paths = {c.path for c in tree.commands}
    assert {("auth", "login"), ("auth", "logout"), ("auth", "status"), ("completion",),
            ("partitions", "create"), ("partitions", "get"), ("partitions", "list"),
            ("partitions", "watch"), ("partitions", "wait"), ("partitions", "cancel"),
            ("partitions", "delete"), ("partitions", "split")} <= paths
    assert not any(p[0] == "emulator" for p in paths)  # would serve or exec in-process
    assert {"--base-url", "--api-key", "--max-rps", "--profile"} <= {
        o for p in tree.root for o in p.opts}
    get = next(c for c in tree.commands if c.path == ("partitions", "get"))
    assert {"--exit-status", "--no-output", "-o", "--json", "-q", "--fields"} <= {
        o for p in get.params for o in p.opts}


def test_the_seeded_cases_reach_every_command_and_most_options(tree: Tree) -> None:
    generated = cases(CASES, SEED, tree)
    assert generated == cases(CASES, SEED, tree)  # seeded: the same cases every run
    per_command = Counter(found[0].path for case in generated
                          if (found := find_command(tree, case.argv)) is not None)
    assert set(per_command) == {c.path for c in tree.commands}
    assert min(per_command.values()) >= CASES // (4 * len(tree.commands))
    used = {token.split("=", 1)[0] for case in generated for token in case.argv}
    options = {(c.path, p.opts) for c in tree.commands for p in c.params if not p.argument}
    reached = [key for key in options if used & set(key[1])]
    assert len(reached) >= 0.9 * len(options)


# ---- the property, checked on made-up outcomes ------------------------------------------


@pytest.mark.parametrize(("case", "outcome", "expected"), [
    (Case(("partitions", "get", "x", "--json")), Outcome(0, '{"id": "x"}\n', ""), []),
    (Case(("partitions", "get", "x", "--json")), Outcome(0, "id x\n", ""),
     ["stdout is not JSON in json mode"]),
    (Case(("partitions", "list", "-o", "jsonl")), Outcome(0, '{"a": 1}\n{\n', ""),
     ["stdout line is not JSON in jsonl mode"]),
    (Case(("partitions", "list", "-o", "table")), Outcome(0, "id x\n", ""), []),
    (Case(("partitions", "get", "x")), Outcome(1, "", "Traceback (most recent call last):\n"),
     ["traceback printed"]),
    (Case(("partitions", "get", "x")), Outcome(130, "", ""), ["exit code 130 outside 0-8"]),
    (Case(("partitions", "get", "x")), Outcome(-1, "", "", "Traceback...", "KeyError at x.py:f"),
     ["exception escaped: KeyError at x.py:f"]),
    (Case(("partitions", "get", "x", "-q")), Outcome(0, "a\x1b]52;c;x\x07\n", ""),
     ["raw control characters on stdout"]),
    (Case(("partitions", "get", "x", "--help")), Outcome(0, "Usage: ...\n", ""), []),
    (Case(("partitions", "get", "x")), Outcome(2, "", "error: bad \u202e\n"),
     ["raw control characters on stderr"]),
    (Case(("partitions", "get", "x", "--json")), Outcome(6, "", "error: x: not found\n"),
     ["no JSON error object for exit 6 on stderr"]),
    (Case(("partitions", "get", "x", "-o", "jsonl")),
     Outcome(6, "", 'error: x: not found\n{"error": {"exit_code": 6}}\n'), []),
    (Case(("partitions", "get", "x", "-o", "jsonl")),
     Outcome(6, "", 'error: x\n{"error": {"exit_code": 1}}\n'),
     ["no JSON error object for exit 6 on stderr"]),
    (Case(("partitions", "get", "--fields", "--json", "x")), Outcome(2, "", "error: x\n"), []),
    (Case(("partitions", "get", "x", "--json=1")), Outcome(2, "", "error: x\n"), []),
    (Case(("partitions", "get", "x"), env=(("RETAB_OUTPUT", "json"),)),
     Outcome(6, "", "error: x\n"), []),  # only a flag asks for JSON errors
])
def test_problems_names_what_an_outcome_breaks(tree: Tree, case: Case, outcome: Outcome,
                                               expected: list[str]) -> None:
    found = problems(case, outcome, tree)
    assert len(found) == len(expected), found
    assert all(f.startswith(e) for f, e in zip(found, expected, strict=True)), found


# ---- the harness: real runs, virtual time -----------------------------------------------


def test_a_case_runs_the_tool_against_the_emulator(harness: Harness, tree: Tree) -> None:
    outcome = harness.run(Case(("partitions", "get", "{run}", "--json")))
    assert (outcome.exit_code, outcome.stderr, outcome.exception) == (0, "", None)
    assert json.loads(outcome.stdout)["id"] == harness.runs["{run}"]
    assert problems(Case(("partitions", "get", "{run}", "--json")), outcome, tree) == []


def test_retries_against_a_dead_server_pass_in_virtual_time(harness: Harness) -> None:
    case = Case(("partitions", "get", "prtn_x"), env=(("RETAB_API_BASE_URL", "{dead_url}"),))
    outcome = harness.run(case)
    assert outcome.exit_code == 1
    assert "retrying GET /v1/partitions/prtn_x" in outcome.stderr
    # 5 attempts, backoff from 0.5 s doubling (half of it jitter): at least 3.75 s, slept
    # on the virtual clock only.
    assert harness.clock.offset >= 3.75
    assert asyncio.sleep is harness.clock._real_sleep  # restored after the case
    assert time.monotonic is harness.clock._real_monotonic


def test_the_request_budget_waits_in_virtual_time(harness: Harness) -> None:
    # 0.01 requests/s with a burst of 2: the third GET waits 100 s for its slot.
    case = Case(("--max-rps", "0.01", "partitions", "get", "{run}", "{failed}",
                 "{cancelled}", "--json"))
    outcome = harness.run(case)
    assert outcome.exit_code == 0, outcome.summary()
    assert [o["id"] for o in json.loads(outcome.stdout)] == [
        harness.runs[k] for k in ("{run}", "{failed}", "{cancelled}")]
    assert harness.clock.offset >= 99


def test_reduce_keeps_only_what_the_failure_needs(tree: Tree) -> None:
    def run(case: Case) -> Outcome:  # fails while --boom is there
        if "--boom" in case.argv:
            return Outcome(-1, "", "", "Traceback ...", "KeyError at get.py:get")
        return Outcome(2, "", "error: no such option\n")

    noisy = Case(("--debug", "partitions", "get", "--boom", "x", "--json"), "ids\n",
                 (("NO_COLOR", "1"), ("RETAB_OUTPUT", "table")))
    assert reduce(run, noisy, tree) == Case(("--boom",))


# ---- the seeded run ---------------------------------------------------------------------


def test_fuzzed_command_lines_hold_the_property(harness: Harness, tree: Tree) -> None:
    unknown: dict[str, tuple[Case, Outcome, list[str]]] = {}
    for case in cases(CASES, SEED, tree):
        outcome = harness.run(case)
        found = problems(case, outcome, tree)
        if found and known_finding(case, outcome, found) is None:
            unknown.setdefault(signature(found), (case, outcome, found))
    report = "\n\n".join(f"{key}\n  {case.shell()}\n{outcome.summary()}"
                         for key, (case, outcome, _) in unknown.items())
    assert not unknown, f"{len(unknown)} new kind(s) of failure:\n\n{report}"


# ---- what the fuzzing found: each one's minimal reproduction ------------------------------


def _known_param(known: Known) -> object:
    return pytest.param(known, id=known.name,
                        marks=pytest.mark.xfail(strict=True, raises=AssertionError,
                                                 reason=known.reason))


@pytest.mark.parametrize("known", [*(_known_param(k) for k in KNOWN),
                                   *(pytest.param(k, id=k.name) for k in FIXED)])
def test_found_failure_is_fixed(harness: Harness, tree: Tree, fuzz_emulator: Emulator,
                                known: Known) -> None:
    fuzz_emulator.control("DELETE", "faults")
    for fault in known.faults:
        fuzz_emulator.add_fault(**fault)
    try:
        outcome = harness.run(known.case)
    finally:
        fuzz_emulator.control("DELETE", "faults")
    assert problems(known.case, outcome, tree) == [], outcome.summary()


def test_every_known_failure_is_recognised_by_its_own_matcher(harness: Harness, tree: Tree,
                                                              fuzz_emulator: Emulator) -> None:
    # A matcher that no longer fits its own reproduction would hide nothing and help no one.
    for known in KNOWN:
        if known.faults:
            continue
        outcome = harness.run(known.case)
        found = problems(known.case, outcome, tree)
        if found:  # still broken: the random run must recognise it
            assert known_finding(known.case, outcome, found) == known.name, known.name

