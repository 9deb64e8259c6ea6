"""`--debug` (and RETAB_DEBUG=1): each request and its response in full on stderr, as
`retab` prints them through a real process, against the emulator and a hostile server;
then render/debug.py's rules one by one."""

from __future__ import annotations

import base64
import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from retab_cli.client import USER_AGENT, Exchange, mask_key
from retab_cli.render.debug import BODY_LIMIT, exchange_lines

from cli_support import SAMPLE_PDF, Cli, http_stub, run_isolated

KEY = "sk_live_debug_0123456789abcdef"
DATE = re.compile(r"^(debug:   < date: ).*$")


def normalised(stderr: str, *pairs: tuple[str, str]) -> list[str]:
    """stderr's lines with the date header and the given (value, placeholder) pairs fixed."""
    lines = [DATE.sub(r"\1DATE", line) for line in stderr.splitlines()]
    for value, placeholder in pairs:
        lines = [line.replace(value, placeholder) for line in lines]
    return [re.sub(r"\(\d+ ms\)", "(N ms)", line) for line in lines]


# ---- against the emulator ------------------------------------------------------------------


@pytest.mark.parametrize("how", [["--debug"], []])
def test_a_get_shows_the_whole_exchange(cli: Cli, how: list[str]) -> None:
    created = cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "--background", "--json")
    run = created.json()
    env = {} if how else {"RETAB_DEBUG": "1"}
    result = cli.run(*how, "partitions", "get", run["id"], "--no-output", "-q", env=env)
    assert (result.exit_code, result.stdout) == (0, run["id"] + "\n")
    host = cli.emu.url.removeprefix("http://")
    (rid,) = re.findall(r"x-request-id: (req_\w+)", result.stderr)
    body = result.stderr.splitlines()[-1].removeprefix("debug:   < ")
    assert json.loads(body)["id"] == run["id"]
    masked = mask_key(cli.emu.api_key)
    assert normalised(result.stderr, (body, "BODY"), (rid, "RID"), (run["id"], "ID"),
                      (host, "HOST")) == [
        "debug: GET http://HOST/v1/partitions/ID -> 200 (N ms) request_id=RID",
        "debug:   > GET /v1/partitions/ID?include_output=false",
        "debug:   > host: HOST",
        "debug:   > accept-encoding: gzip, deflate",
        "debug:   > connection: keep-alive",
        f"debug:   > authorization: Bearer {masked}",
        f"debug:   > api-key: {masked}",
        f"debug:   > user-agent: {USER_AGENT}",
        "debug:   > accept: application/json",
        "debug:   < HTTP/1.1 200 OK",
        "debug:   < date: DATE",
        "debug:   < server: uvicorn",
        f"debug:   < content-length: {len(body)}",
        "debug:   < content-type: application/json",
        "debug:   < x-request-id: RID",
        "debug:   < BODY",
    ]
    assert cli.emu.api_key not in result.stderr


def test_a_create_elides_the_document_with_its_size(cli: Cli) -> None:
    result = cli.run("--debug", "partitions", "create", str(SAMPLE_PDF), "--key", "k",
                     "--background", "--idempotency-key", "idem-1", "-q")
    assert result.exit_code == 0, result.stderr
    payload = len(base64.b64encode(SAMPLE_PDF.read_bytes()))
    (sent,) = [line for line in result.stderr.splitlines() if line.startswith("debug:   > {")]
    shown = json.loads(sent.removeprefix("debug:   > "))
    assert shown == {
        "document": {"filename": "invoices.pdf", "url": "data:application/pdf;base64,"
                                                        f"<… {payload} bytes of base64 elided>"},
        "key": "k", "instructions": shown["instructions"], "background": True}
    assert "debug:   > idempotency-key: idem-1" in result.stderr.splitlines()
    assert "debug:   > content-type: application/json" in result.stderr.splitlines()
    assert "debug:   < HTTP/1.1 201 Created" in result.stderr.splitlines()


def test_without_debug_nothing_is_shown(cli: Cli) -> None:
    result = cli.run("partitions", "list", "-q")
    assert (result.exit_code, result.stderr) == (0, "")


# ---- against a hostile server ------------------------------------------------------------


HOSTILE_BODY = (f"bad\n::error::forged\x1b]52;c;aGk=\x07 {KEY} " + "x" * 3000).encode()


class Hostile(BaseHTTPRequestHandler):
    """Echoes the key back everywhere, with line breaks, escapes and workflow commands."""

    def do_GET(self) -> None:
        self.send_response(404)
        for name, value in {"Content-Type": "text/plain", "x-request-id": f"req_{KEY}",
                            "Set-Cookie": "session=s3cret", "X-Upstream-Token": "tok_abc",
                            "X-Note": f"k={KEY}",
                            "Content-Length": str(len(HOSTILE_BODY))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(HOSTILE_BODY)

    def log_message(self, *args: object) -> None:
        return None


def test_a_hostile_server_cannot_forge_lines_or_see_the_key_shown(tmp_path: Path) -> None:
    with http_stub(Hostile) as url:
        result = run_isolated(tmp_path, "--debug", "partitions", "get", "prtn_x", "-o", "json",
                              env={"RETAB_API_BASE_URL": url, "RETAB_API_KEY": KEY})
    assert result.exit_code == 6
    lines = result.stderr.splitlines()
    assert KEY not in result.stderr and "s3cret" not in result.stderr
    assert "tok_abc" not in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert all(line.startswith(("debug:", "error:", "hint:", "{")) for line in lines), lines
    shown = mask_key(KEY)
    assert f"debug:   < x-request-id: req_{shown}" in lines
    assert "debug:   < set-cookie: ****" in lines
    assert "debug:   < x-upstream-token: ****" in lines
    assert f"debug:   < x-note: k={shown}" in lines
    (body,) = [line for line in lines if line.startswith("debug:   < bad")]
    text = HOSTILE_BODY.decode().replace(KEY, shown)[:BODY_LIMIT]
    visible = text.replace("\n", "\\n").replace("\x1b", "\\x1b").replace("\x07", "\\x07")
    assert body == f"debug:   < {visible}… <cut: {len(HOSTILE_BODY)} bytes in all>"


# ---- the rules ---------------------------------------------------------------------------


def exchange(**kw: object) -> Exchange:
    base: dict[str, object] = {
        "method": "POST", "target": "/v1/x", "request_headers": (), "request_body": None,
        "mask": lambda text: text.replace(KEY, "MASKED"), "status": 200, "reason": "OK",
        "http_version": "HTTP/1.1"}
    return Exchange(**{**base, **kw})  # type: ignore[arg-type]


def test_a_long_body_is_cut_with_its_whole_size() -> None:
    body = ("é" * 3000).encode()
    (_, _, shown) = exchange_lines(exchange(response_body=body,
                                            response_headers=(("content-type", "text/plain"),)))[1:]
    assert shown == f"debug:   < {'é' * BODY_LIMIT}… <cut: {len(body)} bytes in all>"


def test_the_key_is_masked_before_a_body_is_cut() -> None:
    body = ("a" * (BODY_LIMIT - 5) + KEY).encode()
    shown = exchange_lines(exchange(response_body=body))[-1]
    assert KEY[:5] not in shown and shown.endswith("aMASKE… <cut: "
                                                    f"{len(body)} bytes in all>")


def test_binary_bodies_are_described_not_shown() -> None:
    lines = exchange_lines(exchange(
        request_body=b"%PDF-1.7\x00\xff", request_headers=(("content-type", "application/pdf"),),
        response_body=b"\x89PNG\x00", response_headers=()))
    assert lines == ["debug:   > POST /v1/x", "debug:   > content-type: application/pdf",
                     "debug:   > <10 bytes of application/pdf, not shown>",
                     "debug:   < HTTP/1.1 200 OK", "debug:   < <5 bytes of binary data, not shown>"]


def test_a_long_base64_run_is_elided_anywhere() -> None:
    run = base64.b64encode(bytes(range(256)) * 2).decode()
    lines = exchange_lines(exchange(request_body=json.dumps({"mime_data": run}).encode()))
    assert lines[1] == f'debug:   > {{"mime_data": "<… {len(run)} bytes of base64 elided>"}}'


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("Authorization", f"Bearer {KEY}", "Bearer MASKED"),
    ("Authorization", "Basic dXNlcjpwYXNz", "Basic ****"),
    ("Proxy-Authorization", "opaque", "****"),
    ("X-Api-Key", "other-key", "****"),
    ("Cookie", "a=b", "****"),
    ("Idempotency-Key", "idem-1", "idem-1"),
    ("X-Request-Id", f"req_{KEY}", "req_MASKED"),
    ("Content-Type", "application/json", "application/json"),
])
def test_header_values(name: str, value: str, shown: str) -> None:
    assert exchange_lines(exchange(request_headers=((name, value),), status=None)) == [
        "debug:   > POST /v1/x", f"debug:   > {name}: {shown}", "debug:   < no response"]
