"""`--debug` through the whole tool against the emulator: the exchange on stderr, the
key masked, a hostile body kept to one line, stdout untouched."""

from __future__ import annotations

import json

from cli_support import SAMPLE_PDF, Cli


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
