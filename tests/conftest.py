"""Shared fixtures: one emulator per test session (per xdist worker)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import Cli, Warnings
from emulator_support import Emulator, external_emulator, start_emulator


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """The session's emulator: control API on, speed 20; or RETAB_TEST_EMULATOR_URL's.

    An external emulator serves one test process only: with xdist, every worker resets
    it, so each worker starts its own instead.
    """
    external = None if os.environ.get("PYTEST_XDIST_WORKER") else external_emulator()
    if external is not None:
        yield external
        return
    emu = start_emulator()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """The session's emulator, reset: no runs, faults, logged requests or rate state."""
    emulator.reset()
    return emulator


@pytest.fixture
def cli(emu: Emulator, tmp_path: Path) -> Cli:
    """The tool, in-process, pointed at a freshly reset emulator."""
    return Cli(emu, tmp_path)


@pytest.fixture
def warnings() -> Warnings:
    """A `warn` callback that keeps what it was told."""
    return Warnings()
