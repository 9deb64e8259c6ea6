"""Benchmark: GET /v1/partitions/{id} on the emulator under 16 concurrent clients.

Starts `python -m retab_cli.emulator` on a free port with a file database in a
temporary directory, seeds partitions through the control API, then drives it with
an asyncio load generator (raw HTTP/1.1 keep-alive connections on asyncio streams,
one per client) for a fixed time. Reports requests/s and p50/p99 latency, and the
same for a baseline in the same run: an unknown route (404 through the middleware and
router, no database), the framework's floor. Budget (docs/design.md §7): >= 400 req/s and
p99 < 50 ms on 2 cores.

Beside the wall-clock figures, which swing by half on a machine shared with other
work, the CPU time of one GET through the in-process ASGI stack (middleware, router,
SQLite; no sockets), best of 5 rounds: the figure to compare between two versions.

Then one file upload through the files API (`--upload MIB`, 0 to skip): the signed
PUT's throughput and how much the emulator's peak RSS grew meanwhile (the bytes
stream to disk, so it should stay a few MiB whatever the size).

    .venv/bin/python bench/bench_emulator.py [--duration 10] [--clients 16] [--seed 1000] [--upload 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

KEY = "rt_test_emulator"
BUDGET_RPS = 400.0
BUDGET_P99_MS = 50.0


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<34} {self.rps:8.0f} req/s   p50 {self.percentile(0.50):6.2f} ms"
            f"   p99 {self.percentile(0.99):6.2f} ms   errors {self.errors}"
        )


def start(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "retab_cli.emulator", "--port", "0", "--db", str(db), "--control"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return proc, line.removeprefix("listening on ").strip()


def call(url: str, method: str = "GET", body: object = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {KEY}")
    request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=120) as response:
        return json.loads(response.read())


def seed_ids(base: str, count: int) -> list[str]:
    call(f"{base}/_emulator/seed", "POST", {"count": count})
    ids: list[str] = []
    after = ""
    while True:
        page = call(f"{base}/v1/partitions?limit=100{after}")
        assert isinstance(page, dict)
        ids += [item["id"] for item in page["data"]]
        if not page["list_metadata"]["after"]:
            return ids
        after = f"&after={page['list_metadata']['after']}"


async def client(host: str, port: int, paths: list[str], offset: int, until: float, result: Result) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    index = offset
    while time.perf_counter() < until:
        path = paths[index % len(paths)]
        index += 1
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n\r\n").encode()
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        result.latencies.append(time.perf_counter() - started)
        result.requests += 1
        if head[9:12] not in (b"200", b"404"):
            result.errors += 1
    writer.close()
    await writer.wait_closed()


async def load(name: str, base: str, paths: list[str], clients: int, duration: float) -> Result:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    result = Result(name, 0, 0.0, [], 0)
    started = time.perf_counter()
    until = started + duration
    await asyncio.gather(*(client(host, int(port), paths, i * 7, until, result) for i in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


async def put_upload(base: str, mib: int) -> float:
    """PUT `mib` MiB of zeros to a signed upload URL; the seconds it took."""
    session = call(f"{base}/v1/files/upload", "POST", {"filename": "bench.bin", "size_bytes": mib * 2**20})
    assert isinstance(session, dict)
    url = urllib.parse.urlsplit(session["uploadUrl"])
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = [f"PUT {url.path}?{url.query} HTTP/1.1", f"Host: {url.netloc}", f"Content-Length: {mib * 2**20}"]
    head += [f"{name}: {value}" for name, value in session["uploadHeaders"].items()]
    started = time.perf_counter()
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    piece = bytes(2**20)
    for _ in range(mib):
        writer.write(piece)
        await writer.drain()
    status = (await reader.readuntil(b"\r\n\r\n"))[9:12]
    elapsed = time.perf_counter() - started
    writer.close()
    await writer.wait_closed()
    if status != b"200":
        raise SystemExit(f"the upload failed: HTTP {status.decode()}")
    call(f"{base}/v1/files/upload/{session['fileId']}/complete", "POST", {})
    return elapsed


def asgi_cost_us(db: Path, seeded: int, requests: int = 2000) -> float:
    """CPU microseconds per GET /v1/partitions/{id} through the app itself (control on,
    as in the served runs), best of 5 rounds."""
    from retab_cli.emulator import runs
    from retab_cli.emulator.app import create_app
    from retab_cli.emulator.config import Settings
    from retab_cli.emulator.middleware import owner_of

    app, state = create_app(Settings(db=str(db), control=True))
    batch = runs.seed_runs(owner_of(KEY), seeded, None, "seed-", state.clock.now())
    state.store.insert(batch)
    headers = [(b"host", b"x"), (b"authorization", f"Bearer {KEY}".encode())]

    async def get(run_id: str) -> None:
        scope = {"type": "http", "method": "GET", "path": f"/v1/partitions/{run_id}", "query_string": b"",
                 "headers": headers, "server": ("127.0.0.1", 1), "scheme": "http", "root_path": ""}
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        await app(scope, receive, send)  # type: ignore[arg-type]
        assert sent[0]["status"] == 200

    async def rounds() -> float:
        for run in batch[:200]:
            await get(run.id)
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for index in range(requests):
                await get(batch[index % len(batch)].id)
            best = min(best, time.process_time() - started)
        return best / requests * 1e6

    try:
        return asyncio.run(rounds())
    finally:
        # Versions before the files API close the store alone: both can be compared.
        getattr(state, "close", state.store.close)()


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--upload", type=int, default=256, metavar="MIB")
    args = parser.parse_args()
    upload_line = ""
    with tempfile.TemporaryDirectory() as tmp:
        cost = asgi_cost_us(Path(tmp) / "asgi.sqlite3", args.seed)
        proc, base = start(Path(tmp) / "emulator.sqlite3")
        try:
            ids = seed_ids(base, args.seed)
            paths = [f"/v1/partitions/{run_id}" for run_id in ids]
            asyncio.run(load("warm-up", base, paths, args.clients, 1.0))
            baseline = asyncio.run(
                load("baseline: unknown route (404)", base, ["/nowhere"], args.clients, args.duration)
            )
            measured = asyncio.run(load("GET /v1/partitions/{id}", base, paths, args.clients, args.duration))
            if args.upload:
                before = peak_rss_mib(proc.pid)
                seconds = asyncio.run(put_upload(base, args.upload))
                grown = peak_rss_mib(proc.pid) - before
                upload_line = (
                    f"PUT upload of {args.upload} MiB: {args.upload / seconds:.0f} MiB/s,"
                    f" emulator peak RSS +{grown:.1f} MiB"
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    print(f"{args.clients} clients, {args.duration:g} s each, {len(ids)} seeded partitions (file db)")
    print(baseline.line())
    print(measured.line())
    print(f"ratio to baseline: {measured.rps / baseline.rps:.2f}x throughput")
    print(f"in-process ASGI stack: {cost:.0f} us of CPU per GET (best of 5 rounds)")
    if upload_line:
        print(upload_line)
    ok = measured.rps >= BUDGET_RPS and measured.percentile(0.99) < BUDGET_P99_MS and not measured.errors
    print(f"budget (>= {BUDGET_RPS:.0f} req/s, p99 < {BUDGET_P99_MS:.0f} ms): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
