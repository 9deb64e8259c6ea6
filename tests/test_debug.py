"""`--debug` through the whole tool against the emulator: the exchange on stderr, the
key masked, a hostile body kept to one line, stdout untouched."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from retab_cli.client import mask_key
from retab_cli.exchange_log import BODY_LIMIT

from cli_support import SAMPLE_PDF, Cli, http_stub, run_isolated


def test_debug_shows_each_exchange_on_stderr_and_leaves_stdout_alone(cli: Cli) -> None:
    result = cli("--debug", "partitions", "create", str(SAMPLE_PDF), "--key", "invoice number",
                 "--background", "-o", "json")
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout)  # stdout is the data only
    lines = result.stderr.splitlines()
    summary = [line for line in lines if line.startswith("debug: POST ")]
    assert len(summary) == 1 and summary[0].startswith(f"debug: POST {cli.emu.url}/v1/partitions -> 201 (")
    details = lines[lines.index(summary[0]) + 1:]
    assert "debug:   > content-type: application/json" in details
    # The headers as sent, those httpx adds included.
    assert f"debug:   > host: {cli.emu.url.removeprefix('http://')}" in details
    assert any(line.startswith("debug:   > content-length: ") for line in details)
    assert any(line.startswith("debug:   > authorization: Bearer rt_...") for line in details)
    assert any(line.startswith("debug:   > idempotency-key: ") for line in details)
    sent = next(line for line in details if line.startswith('debug:   > {"document"'))
    assert ";base64,<" in sent and " characters left out>" in sent  # the PDF left out
    assert len(sent) < 600
    received = next(line for line in details if line.startswith("debug:   < {"))
    assert json.loads(received.removeprefix("debug:   < "))["id"] == run["id"]
    assert cli.emu.api_key not in result.stderr


def test_a_hostile_body_stays_on_one_line_each(cli: Cli) -> None:
    cli.emu.add_fault(path="/v1/partitions", method="GET", status=400,
                      body=f"bad\n::error::forged\r\n{cli.emu.api_key}\x1b]52;c;eA==\x07")
    result = cli("--debug", "partitions", "list", "-o", "json", env={"RETAB_MAX_ATTEMPTS": "1"})
    assert (result.exit_code, result.stdout) == (2, "")
    body = [line for line in result.stderr.splitlines() if line.startswith("debug:   < bad")]
    assert body == ["debug:   < bad\\n::error::forged\\r\\nrt_...ator\\x1b]52;c;eA==\\x07"]
    assert not any(line.startswith("::error::") for line in result.stderr.splitlines())
    assert cli.emu.api_key not in result.stderr


# ---- a hostile server, through a real process ------------------------------------------------

KEY = "sk_live_debug_0123456789abcdef"
# The key echoed so that it straddles the 2 KiB cut: only a mask applied before the cut
# hides it (masking the cut line finds no whole copy and shows the first 12 characters).
STRADDLING = ("a" * (BODY_LIMIT - 12) + KEY).encode()


class Hostile(BaseHTTPRequestHandler):
    """Echoes the key back in headers and in a body, beside credential-looking headers."""

    def do_GET(self) -> None:
        self.send_response(404)
        for name, value in {"Content-Type": "text/plain", "x-request-id": f"req_{KEY}",
                            "Set-Cookie": "session=s3cret-cookie-value",
                            "X-Upstream-Token": "tok_upstream_0123456789",
                            "X-Session-Secret": "hidden-session-secret",
                            "Content-Length": str(len(STRADDLING))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(STRADDLING)

    def log_message(self, *args: object) -> None:
        return None


def test_a_hostile_server_sees_no_key_or_secret_shown(tmp_path: Path) -> None:
    with http_stub(Hostile) as url:
        result = run_isolated(tmp_path, "--debug", "partitions", "get", "prtn_x", "-o", "json",
                              env={"RETAB_API_BASE_URL": url, "RETAB_API_KEY": KEY})
    assert result.exit_code == 6
    lines = result.stderr.splitlines()
    assert all(line.startswith(("debug:", "error:", "hint:", "{")) for line in lines), lines
    assert KEY[:12] not in result.stderr  # the copy cut at 2 KiB: masked before the cut
    assert f"debug:   < x-request-id: req_{mask_key(KEY)}" in lines
    for secret in ("s3cret-cookie", "upstream_0123", "hidden-session"):
        assert secret not in result.stderr, secret
    (body,) = [line for line in lines if line.startswith("debug:   < aaa")]
    assert body == f"debug:   < {'a' * (BODY_LIMIT - 12)}{mask_key(KEY)}"  # masked: it fits
