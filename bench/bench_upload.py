"""Benchmark of a big-document upload (issue 10, docs/design.md §11): the tool's upload engine
against a plain `curl -T` of the same file to the same kind of signed URL, in one run.

A 1 GiB file (sparse by default: the page cache serves zeros, so the figures are the
upload path's, not the disk's; `--generated` writes pseudo-random bytes instead) goes
through the three steps of Retab's files API: `POST /v1/files/upload`, the PUT to the
signed `uploadUrl`, `POST /v1/files/upload/{id}/complete`. Each round uploads it once
with the tool (a separate process running `retab_cli.uploads.upload`, timed, with its
peak RSS read by wait4 in bench_cli's launcher) and once with curl (a session started
by this script, then `curl -T FILE` to its URL with its `uploadHeaders`, then complete),
interleaved. A 1 KiB upload by the same tool process gives the RSS baseline, so the
figure that matters is the growth: the file is streamed, so it must stay a few MiB.

Target: `--target emulator` starts `python -m retab_cli.emulator --port 0 --db PATH`
(its files endpoints and signed URLs on itself); `--target stand-in` uses the test
suite's stand-ins (tests/upload_support.py: a stdlib files API and storage server in
this process); `auto` (the default) takes the emulator when it serves the files API.

    .venv/bin/python bench/bench_upload.py                    # 1 GiB, 3 rounds
    .venv/bin/python bench/bench_upload.py --size-mib 256 --rounds 1 --target stand-in

Nothing here asserts; the budget line says met or NOT met.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_cli
from bench_cli import KEY, PY, ROOT, Emulator, base_env, run

sys.path.insert(0, str(ROOT / "tests"))

MIB = 1024 * 1024
RSS_GROWTH_BUDGET_MIB = 8.0  # "a few MiB" (issue 10)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"

# Run in its own process (through bench_cli's launcher, for wait4's peak RSS): the
# tool's engine as `create` uses it, timed from the first request to the MIMEData.
DRIVER = """\
import asyncio, json, sys, time
from retab_cli.budget import Budget
from retab_cli.client import Client
from retab_cli.documents import from_path
from retab_cli.uploads import upload

base_url, key, path = sys.argv[1:4]
doc = from_path(path, filename=None, mime_type=None, warn=lambda _: None)
marks = []

def progress(sent, total):
    if sent in (0, total) or not marks:
        marks.append((time.perf_counter(), sent))

async def main():
    async with Client(base_url, key, budget=Budget(0)) as client:
        began = time.perf_counter()
        document = await upload(client, doc, progress=progress)
        return time.perf_counter() - began, document

seconds, document = asyncio.run(main())
put = [t for t, sent in marks if sent == doc.size][-1] - [t for t, sent in marks if sent == 0][-1]
print(json.dumps({"seconds": seconds, "put_seconds": put, "document": document}))
"""


@dataclass
class Target:
    """Where the files API and its signed URLs are."""

    name: str
    url: str
    key: str


def api_call(target: Target, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{target.url}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {target.key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=600) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def serves_files(target: Target) -> bool:
    """Whether the target has the files API (a session for one byte; never completed)."""
    try:
        api_call(target, "POST", "/v1/files/upload",
                 {"filename": "probe.txt", "content_type": "text/plain", "size_bytes": 1})
    except urllib.error.HTTPError as exc:
        return exc.code not in (404, 405)
    return True


@contextmanager
def emulator_target(tmp: Path) -> Iterator[Target]:
    emu = Emulator(tmp, speed=1.0)
    try:
        yield Target("emulator (python -m retab_cli.emulator --port 0 --db PATH)", emu.url, KEY)
    finally:
        emu.stop()


@contextmanager
def stand_in_target() -> Iterator[Target]:
    from upload_support import FilesApi, Storage

    storage = Storage.start()
    api = FilesApi.start(storage, KEY)
    try:
        yield Target("stand-in (tests/upload_support.py: stdlib files API and storage)",
                     api.url, KEY)
    finally:
        api.stop()
        storage.stop()


def make_file(path: Path, size: int, generated: bool) -> str:
    """The document, and its sha256 (for curl's complete)."""
    with path.open("wb") as fh:
        if generated:
            block = hashlib.sha256(b"seed").digest() * (MIB // 32)
            for offset in range(0, size, MIB):
                fh.write(block[: min(MIB, size - offset)])
        else:
            fh.truncate(size)
        fh.seek(0)
        fh.write(PDF)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def tool_upload(target: Target, path: Path, home: Path) -> dict[str, Any]:
    out = home / "driver.json"
    proc = run([PY, "-c", DRIVER, target.url, target.key, str(path)], base_env(home),
               stdout=str(out), timeout=1800)
    if proc.code != 0:
        raise RuntimeError(f"the tool's upload failed (exit {proc.code}): {proc.stderr[-800:]}")
    answer: dict[str, Any] = json.loads(out.read_text())
    answer["maxrss_mib"] = proc.maxrss_kib / 1024
    return answer


def tool_create(target: Target, path: Path, home: Path) -> tuple[float, float]:
    """`retab partitions create FILE --background` as a user runs it (the file goes
    through the files API by itself, being over the inline cap): wall seconds, peak RSS."""
    env = base_env(home, RETAB_API_BASE_URL=target.url, RETAB_API_KEY=target.key,
                   RETAB_MAX_RPS="0")
    proc = run([PY, "-m", "retab_cli", "partitions", "create", str(path), "--key",
                "invoice number", "--background", "--json"], env, timeout=1800)
    if proc.code != 0:
        raise RuntimeError(f"create failed (exit {proc.code}): {proc.stderr[-800:]}")
    return proc.wall, proc.maxrss_kib / 1024


def curl_upload(target: Target, path: Path, size: int, sha256: str) -> float:
    """Session, `curl -T` to its URL with its headers, complete; the PUT's seconds."""
    session = api_call(target, "POST", "/v1/files/upload", {
        "filename": path.name, "content_type": "application/pdf", "size_bytes": size,
        "sha256": sha256})
    argv = ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
            "-T", str(path), "-X", session.get("uploadMethod") or "PUT", "-H", "Expect:"]
    for name, value in (session.get("uploadHeaders") or {}).items():
        argv += ["-H", f"{name}: {value}"]
    done = subprocess.run([*argv, session["uploadUrl"]], capture_output=True, text=True,
                          check=False, timeout=1800)
    status, _, seconds = done.stdout.partition(" ")
    if done.returncode != 0 or not status.startswith("2"):
        raise RuntimeError(f"curl failed: exit {done.returncode}, HTTP {status}: {done.stderr[-400:]}")
    api_call(target, "POST", f"/v1/files/upload/{session['fileId']}/complete", {"sha256": sha256})
    return float(seconds)


def rate(size: int, seconds: float) -> str:
    return f"{size / MIB / seconds:8.1f} MiB/s"


def measure(target: Target, tmp: Path, size: int, rounds: int, generated: bool,
            with_create: bool = False) -> bool:
    big, small = tmp / "big.pdf", tmp / "small.pdf"
    began = time.perf_counter()
    sha256 = make_file(big, size, generated)
    make_file(small, 1024, generated=False)
    print(f"file: {size / MIB:.0f} MiB ({'generated' if generated else 'sparse'}), written and "
          f"hashed in {time.perf_counter() - began:.1f} s")
    home = tmp / "home"
    home.mkdir()
    baseline = tool_upload(target, small, home)["maxrss_mib"]
    create_baseline = tool_create(target, small, home)[1] if with_create else 0.0
    tool, tool_put, curl, rss, create, create_rss = [], [], [], [], [], []
    for number in range(1, rounds + 1):
        answer = tool_upload(target, big, home)
        tool.append(answer["seconds"])
        tool_put.append(answer["put_seconds"])
        rss.append(answer["maxrss_mib"])
        curl.append(curl_upload(target, big, size, sha256))
        line = (f"round {number}: tool {rate(size, tool[-1])} (3 steps), PUT {rate(size, tool_put[-1])}; "
                f"curl -T {rate(size, curl[-1])}; tool peak RSS {rss[-1]:.1f} MiB")
        if with_create:
            seconds, peak = tool_create(target, big, home)
            create.append(seconds)
            create_rss.append(peak)
            line += f"; create {rate(size, seconds)}, peak RSS {peak:.1f} MiB"
        print(line)
    growth = max(rss) - baseline
    print(f"\ntarget: {target.name}")
    print(f"medians of {rounds} round(s), {size / MIB:.0f} MiB:")
    print(f"  tool, 3 steps (session, PUT, complete)  {rate(size, statistics.median(tool))}")
    print(f"  tool, PUT alone                          {rate(size, statistics.median(tool_put))}")
    print(f"  curl -T, PUT alone (same kind of URL)    {rate(size, statistics.median(curl))}")
    print(f"  throughput ratio, tool PUT to curl       "
          f"{statistics.median(curl) / statistics.median(tool_put):8.2f}x")
    print(f"  tool peak RSS {max(rss):.1f} MiB; a 1 KiB upload by the same process "
          f"{baseline:.1f} MiB; growth {growth:.1f} MiB")
    met = growth <= RSS_GROWTH_BUDGET_MIB
    if with_create:
        create_growth = max(create_rss) - create_baseline
        print(f"  retab partitions create --background (whole process, start-up included) "
              f"{rate(size, statistics.median(create))}")
        print(f"  create's peak RSS {max(create_rss):.1f} MiB; for a 1 KiB file (sent inline) "
              f"{create_baseline:.1f} MiB; growth {create_growth:.1f} MiB")
        met = met and create_growth <= RSS_GROWTH_BUDGET_MIB
    print(f"budget (peak RSS growth <= {RSS_GROWTH_BUDGET_MIB:.0f} MiB, engine and create): "
          f"{'met' if met else 'NOT met'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--generated", action="store_true",
                        help="write the bytes (default: a sparse file)")
    parser.add_argument("--target", choices=("auto", "emulator", "stand-in"), default="auto")
    parser.add_argument("--tmp", type=Path, default=None,
                        help="where the file and the emulator's database go (default: a temp dir)")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        parser.error("curl is needed for the baseline")
    bench_cli.PYCACHE = None  # the tool's start-up is not what is measured here
    with tempfile.TemporaryDirectory(prefix="retab-bench-upload-", dir=args.tmp) as scratch:
        tmp = Path(scratch)
        met = measure_on(args.target, tmp, args.size_mib * MIB, args.rounds, args.generated)
    return 0 if met else 1


def measure_on(choice: str, tmp: Path, size: int, rounds: int, generated: bool) -> bool:
    if choice in ("auto", "emulator"):
        with emulator_target(tmp) as target:
            if serves_files(target):
                return measure(target, tmp, size, rounds, generated, with_create=True)
            if choice == "emulator":
                raise SystemExit("the emulator does not serve the files API (yet): use --target "
                                 "stand-in")
            print("the emulator does not serve the files API (yet): using the stand-in")
    with stand_in_target() as target:
        return measure(target, tmp, size, rounds, generated)


if __name__ == "__main__":
    sys.exit(main())
