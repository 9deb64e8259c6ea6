"""Commands end to end, in-process (CliRunner) against the emulator."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from cli_support import SAMPLE_PDF, Cli
from emulator_support import logged_data_url

KEY_PHRASE = "invoice number"


def v1_requests(cli: Cli) -> list[dict[str, Any]]:
    return [r for r in cli.emu.requests() if r["path"].startswith("/v1/")]


def create_background(cli: Cli, count: int = 1, *, stuck: bool = True) -> list[str]:
    """Background runs; stuck ones stay in_progress (the emulator runs fast at speed 20)."""
    if stuck:
        cli.emu.next_create("stuck", times=count)
    ids = []
    for _ in range(count):
        result = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE,
                     "--background", "-q")
        assert result.exit_code == 0, result.stderr
        ids.append(result.stdout.strip())
    return ids


# ---- create ------------------------------------------------------------------------


def test_create_sync_returns_the_chunks_and_sends_the_contract_body(cli: Cli) -> None:
    result = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--json")
    assert result.exit_code == 0, result.stderr
    run = result.json()
    assert run["status"] == "completed"
    assert [(c["key"], c["pages"]) for c in run["output"]] == [
        ("INV-001", [1, 2]), ("INV-002", [3, 4, 5]), ("INV-003", [6, 7])]
    assert run["file"]["filename"] == "invoices.pdf"
    (sent,) = v1_requests(cli)
    assert sent["method"] == "POST" and sent["path"] == "/v1/partitions"
    body = sent["body"]
    assert set(body) == {"document", "key", "instructions", "background"}
    assert body["document"]["filename"] == "invoices.pdf"
    assert body["document"]["url"] == logged_data_url(SAMPLE_PDF.read_bytes(), "application/pdf")
    assert body["key"] == KEY_PHRASE
    assert KEY_PHRASE in body["instructions"]
    assert body["background"] is False
    assert re.fullmatch(r"[0-9a-f]{32}", sent["headers"]["idempotency-key"])
    assert result.stderr == ""


def test_create_options_reach_the_body(cli: Cli) -> None:
    result = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--model",
                 "retab-large", "--consensus", "3", "--no-overlap", "--bust-cache",
                 "--instructions", "one chunk per invoice", "--filename", "renamed.pdf",
                 "--idempotency-key", "my-key-1", "--json")
    assert result.exit_code == 0, result.stderr
    (sent,) = v1_requests(cli)
    assert sent["headers"]["idempotency-key"] == "my-key-1"
    body = sent["body"]
    assert body["model"] == "retab-large" and body["n_consensus"] == 3
    assert body["allow_overlap"] is False and body["bust_cache"] is True
    assert body["instructions"] == "one chunk per invoice"
    assert body["document"]["filename"] == "renamed.pdf"
    run = result.json()
    assert run["usage"]["credits"] == pytest.approx(7 * 3 * 3.0)
    assert len(run["consensus"]["choices"]) == 3


def test_create_background_quiet_prints_the_id(cli: Cli) -> None:
    (run_id,) = create_background(cli)
    assert re.fullmatch(r"prtn_[A-Za-z0-9_-]{21}", run_id)
    assert v1_requests(cli)[0]["body"]["background"] is True


def test_create_several_files_keeps_input_order(cli: Cli, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("Invoice number: A-1\fmore\fInvoice number: B-2\n")
    result = cli("partitions", "create", str(text), str(SAMPLE_PDF), "--key", KEY_PHRASE,
                 "--json")
    assert result.exit_code == 0, result.stderr
    runs = result.json()
    assert [r["file"]["filename"] for r in runs] == ["notes.txt", "invoices.pdf"]
    assert [c["key"] for c in runs[0]["output"]] == ["A-1", "B-2"]
    keys = {r["headers"]["idempotency-key"] for r in v1_requests(cli)}
    assert len(keys) == 2
    assert {r["body"]["document"]["url"].split(";")[0] for r in v1_requests(cli)} == {
        "data:text/plain", "data:application/pdf"}


def test_create_from_stdin_needs_a_filename(cli: Cli) -> None:
    result = cli("partitions", "create", "-", "--key", KEY_PHRASE, input=b"Invoice number: X\n")
    assert result.exit_code == 2
    assert "needs --filename" in result.stderr
    result = cli("partitions", "create", "-", "--key", KEY_PHRASE, "--filename", "in.txt",
                 "--json", input=b"Invoice number: X-9\n")
    assert result.exit_code == 0, result.stderr
    assert result.json()["output"] == [{"key": "X-9", "pages": [1]}]


def test_create_data_url_passes_through(cli: Cli) -> None:
    url = "data:text/plain;base64," + base64.b64encode(b"Invoice number: D-4").decode()
    result = cli("partitions", "create", "--url", url, "--filename", "d.txt", "--key",
                 KEY_PHRASE, "--json")
    assert result.exit_code == 0, result.stderr
    logged = logged_data_url(b"Invoice number: D-4", "text/plain")
    assert v1_requests(cli)[0]["body"]["document"] == {"filename": "d.txt", "url": logged}


@pytest.mark.parametrize(("content", "name", "message"), [
    (b"just text", "fake.pdf", "is named .pdf but is not a PDF"),
    (b"", "empty.pdf", "is empty"),
])
def test_create_refuses_bad_files_before_sending(cli: Cli, tmp_path: Path, content: bytes,
                                                 name: str, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = cli("partitions", "create", str(path), "--key", KEY_PHRASE)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stdout == ""
    assert v1_requests(cli) == []


def test_create_refuses_directories_and_missing_files(cli: Cli, tmp_path: Path) -> None:
    for target, message in ((tmp_path, "is a directory"), (tmp_path / "nope.pdf", "no such file")):
        result = cli("partitions", "create", str(target), "--key", KEY_PHRASE)
        assert result.exit_code == 2 and message in result.stderr
    assert v1_requests(cli) == []


def test_create_usage_errors(cli: Cli) -> None:
    cases = [
        (["--key", KEY_PHRASE], "no document given"),
        ([str(SAMPLE_PDF)], "--key is required"),
        ([str(SAMPLE_PDF), "--key", "k", "--consensus", "0"], "between 1 and 8"),
        ([str(SAMPLE_PDF), "--key", "k", "--background", "--wait"], "cannot be used together"),
        ([str(SAMPLE_PDF), str(SAMPLE_PDF), "--key", "k", "--idempotency-key", "x"],
         "single document"),
        ([str(SAMPLE_PDF), "--key", "k", "--timeout", "-5s"], "invalid --timeout"),
        (["--url", "ftp://x/y.pdf", "--key", "k"], "invalid --url"),
    ]
    for args, message in cases:
        result = cli("partitions", "create", *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert v1_requests(cli) == []


def test_create_server_rejection_is_exit_2(cli: Cli) -> None:
    result = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--model",
                 "retab-huge", "-o", "json")
    assert result.exit_code == 2
    error = result.stderr_json()["error"]
    assert error["type"] == "rejected" and error["status"] == 422
    assert error["file"] == str(SAMPLE_PDF)
    assert error["request_id"].startswith("req_")
    assert result.stdout == ""


def test_create_failed_run_exits_3(cli: Cli) -> None:
    cli.emu.next_create("failed")
    result = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--json")
    assert result.exit_code == 3
    assert result.json()["status"] == "failed"


def test_create_retries_with_the_same_idempotency_key(cli: Cli) -> None:
    cli.emu.add_fault(method="POST", path="^/v1/partitions$", status=503, times=2)
    result = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--json")
    assert result.exit_code == 0, result.stderr
    sent = [r for r in v1_requests(cli) if r["method"] == "POST"]
    assert [r["status"] for r in sent] == [503, 503, 201]
    assert len({r["headers"]["idempotency-key"] for r in sent}) == 1
    assert result.stderr.count("retrying POST /v1/partitions") == 2


def test_create_dry_run_sends_nothing_and_needs_no_key(cli: Cli) -> None:
    result = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "--dry-run",
                 env={"RETAB_API_KEY": ""})
    assert result.exit_code == 0, result.stderr
    request = result.json()
    assert request["method"] == "POST" and request["path"] == "/v1/partitions"
    assert request["body"]["document"]["url"] == (
        f"data:application/pdf;base64,<{SAMPLE_PDF.stat().st_size} bytes>")
    assert v1_requests(cli) == []


# ---- get ---------------------------------------------------------------------------


def test_get_one_is_an_object_several_an_array(cli: Cli) -> None:
    first, second = create_background(cli, 2)
    one = cli("partitions", "get", first, "--json")
    assert one.exit_code == 0 and one.json()["id"] == first
    both = cli("partitions", "get", second, first, "--json")
    assert [r["id"] for r in both.json()] == [second, first]
    piped = cli("partitions", "get", "-", "--json", input=f"# ids\n{first}\n\n{first}\n")
    assert [r["id"] for r in piped.json()] == [first]


def test_get_no_output_asks_for_the_cheap_view(cli: Cli) -> None:
    (run_id,) = create_background(cli)
    cli.emu.clear_requests()
    result = cli("partitions", "get", run_id, "--no-output", "--json")
    assert result.exit_code == 0
    (sent,) = v1_requests(cli)
    assert sent["query"] == {"include_output": "false"}


def test_get_missing_id_is_6_with_a_json_error(cli: Cli) -> None:
    (run_id,) = create_background(cli)
    result = cli("partitions", "get", run_id, "prtn_doesnotexist", "-o", "json")
    assert result.exit_code == 6
    assert [r["id"] for r in result.json()] == [run_id]
    error = result.stderr_json()["error"]
    assert error == {"type": "not_found", "message": "Partition not found", "status": 404,
                     "request_id": error["request_id"], "partition_id": "prtn_doesnotexist",
                     "file": None, "exit_code": 6}
    assert "error: prtn_doesnotexist: Partition not found" in result.stderr


def test_get_bad_id_sends_nothing(cli: Cli) -> None:
    result = cli("partitions", "get", "prtn_ok", "../etc/passwd")
    assert result.exit_code == 2
    assert "invalid partition id ../etc/passwd" in result.stderr
    assert v1_requests(cli) == []


def test_get_exit_status(cli: Cli) -> None:
    sync = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "-q")
    (queued,) = create_background(cli)
    cli.emu.next_create("failed")
    failed = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "-q")
    assert cli("partitions", "get", sync.stdout.strip(), "--exit-status", "-q").exit_code == 0
    assert cli("partitions", "get", queued, "--exit-status", "-q").exit_code == 8
    assert cli("partitions", "get", failed.stdout.strip(), "--exit-status", "-q").exit_code == 3
    both = cli("partitions", "get", queued, failed.stdout.strip(), "--exit-status", "-q")
    assert both.exit_code == 3


def test_get_exit_status_is_the_watch_engines_single_check(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retab_cli import watch

    (queued,) = create_background(cli)
    calls: list[list[str]] = []
    real = watch.check_once

    async def recording(client: Any, ids: Any, **kwargs: Any) -> Any:
        calls.append(list(ids))
        return await real(client, ids, **kwargs)

    monkeypatch.setattr(watch, "check_once", recording)
    result = cli("partitions", "get", queued, "--exit-status", "--json")
    assert result.exit_code == 8
    assert result.json()["id"] == queued
    assert calls == [[queued]]
    assert cli("partitions", "get", queued, "--json").exit_code == 0
    assert calls == [[queued]]  # without --exit-status: a plain fetch


def test_get_exit_status_reports_each_error_as_a_fetch_does(cli: Cli) -> None:
    run_id = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "-q").stdout.strip()
    missing = "prtn_doesnotexist00000000"
    checked = cli("partitions", "get", run_id, missing, "--exit-status", "--json")
    fetched = cli("partitions", "get", run_id, missing, "--json")
    assert checked.exit_code == fetched.exit_code == 6
    assert [run["id"] for run in checked.json()] == [run_id]
    assert checked.stdout == fetched.stdout

    def without_request_ids(text: str) -> str:
        return re.sub(r"req_[A-Za-z0-9_-]+", "req_X", text)

    assert f"error: {missing}: " in checked.stderr
    assert "(request_id req_" in checked.stderr
    assert checked.stderr_json()["error"]["request_id"].startswith("req_")
    assert without_request_ids(checked.stderr) == without_request_ids(fetched.stderr)


def test_get_fields_narrows_json(cli: Cli) -> None:
    (run_id,) = create_background(cli)
    result = cli("partitions", "get", run_id, "--json", "--fields", "id,file.filename,nope")
    assert result.json() == {"id": run_id, "file": {"filename": "invoices.pdf"}, "nope": None}


def test_output_choices_conflict(cli: Cli) -> None:
    result = cli("partitions", "get", "prtn_x", "--json", "-q")
    assert result.exit_code == 2 and "conflicting output options" in result.stderr


# ---- list --------------------------------------------------------------------------


def test_list_default_limit_and_more_hint(cli: Cli) -> None:
    cli.emu.seed(30)
    result = cli("partitions", "list", "--json")
    assert result.exit_code == 0, result.stderr
    runs = result.json()
    assert len(runs) == 20
    stamps = [r["created_at"] for r in runs]
    assert stamps == sorted(stamps, reverse=True)
    assert "more partitions exist" in result.stderr
    assert f"--after {runs[-1]['id']}" in result.stderr
    everything = cli("partitions", "list", "--all", "-o", "jsonl")
    assert len(everything.jsonl()) == 30
    assert "more partitions" not in everything.stderr


def test_list_pages_by_100_up_to_the_limit(cli: Cli) -> None:
    cli.emu.seed(250)
    result = cli("partitions", "list", "--limit", "230", "-q")
    ids = result.stdout.split()
    assert len(ids) == 230 == len(set(ids))
    limits = [r["query"]["limit"] for r in v1_requests(cli) if r["method"] == "GET"]
    assert limits == ["100", "100", "30"]


def test_list_several_statuses_are_merged_in_order(cli: Cli) -> None:
    cli.emu.seed(60)
    result = cli("partitions", "list", "--status", "failed", "--status", "cancelled", "--all",
                 "--json")
    runs = result.json()
    assert runs and {r["status"] for r in runs} <= {"failed", "cancelled"}
    stamps = [(r["created_at"], r["id"]) for r in runs]
    assert stamps == sorted(stamps, reverse=True)
    statuses = {r["query"].get("status") for r in v1_requests(cli)}
    assert statuses == {"failed", "cancelled"}


def test_list_filters_reach_the_query(cli: Cli) -> None:
    result = cli("partitions", "list", "--filename", "inv", "--since", "2026-01-01", "--until",
                 "2026-02-01", "--order", "asc", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json() == []
    (sent,) = v1_requests(cli)
    assert sent["query"] == {"limit": "20", "order": "asc", "filename": "inv",
                             "from_date": "2026-01-01", "to_date": "2026-02-01"}


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "2026-02-01", "--until", "2026-01-01"], "is after --until"),
    (["--since", "yesterday"], "invalid --since"),
    (["--status", "done"], "invalid --status"),
    (["--after", "a", "--before", "b"], "cannot be used together"),
    (["--status", "failed", "--status", "queued", "--after", "x"], "cannot be combined"),
    (["--limit", "0"], "--limit must be at least 1"),
])
def test_list_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    result = cli("partitions", "list", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert v1_requests(cli) == []


# ---- cancel ------------------------------------------------------------------------


def test_cancel_active_and_terminal_runs(cli: Cli) -> None:
    (active,) = create_background(cli)
    done = cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "-q").stdout.strip()
    result = cli("partitions", "cancel", active, done, "--json")
    assert result.exit_code == 0, result.stderr
    statuses = {r["id"]: r["status"] for r in result.json()}
    assert statuses == {active: "cancelled", done: "completed"}


def test_cancel_unknown_id_is_6_and_others_still_cancelled(cli: Cli) -> None:
    (active,) = create_background(cli)
    result = cli("partitions", "cancel", "prtn_missing", active, "-q")
    assert result.exit_code == 6
    assert result.stdout.split() == [active]


def test_cancel_all_matching(cli: Cli) -> None:
    active = create_background(cli, 3)
    cli("partitions", "create", str(SAMPLE_PDF), "--key", KEY_PHRASE, "-q")
    refused = cli("partitions", "cancel", "--all-matching", "--filename", "inv")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert not [r for r in v1_requests(cli) if r["path"].endswith("/cancel")]
    dry = cli("partitions", "cancel", "--all-matching", "--filename", "inv", "--dry-run")
    assert dry.exit_code == 0
    assert sorted(r["path"] for r in dry.json()) == sorted(
        f"/v1/partitions/{i}/cancel" for i in active)
    result = cli("partitions", "cancel", "--all-matching", "--filename", "inv", "--yes", "-q")
    assert result.exit_code == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(active)
    assert "3 partition(s) match" not in result.stderr  # -q silences progress


def test_cancel_all_matching_needs_a_filter(cli: Cli) -> None:
    result = cli("partitions", "cancel", "--all-matching", "--yes")
    assert result.exit_code == 2 and "at least one filter" in result.stderr


def test_cancel_stdin_pipeline(cli: Cli) -> None:
    ids = create_background(cli, 2)
    listed = cli("partitions", "list", "--status", "queued", "--status", "in_progress", "-q")
    result = cli("partitions", "cancel", "-", "--yes", "--json", input=listed.stdout)
    assert result.exit_code == 0
    assert sorted(r["id"] for r in result.json()) == sorted(ids)


# ---- delete ------------------------------------------------------------------------


def test_delete_needs_yes_without_a_terminal(cli: Cli) -> None:
    (run_id,) = create_background(cli)
    result = cli("partitions", "delete", run_id)
    assert result.exit_code == 2
    assert [r for r in v1_requests(cli) if r["method"] == "DELETE"] == []


def test_delete_reports_each_id(cli: Cli) -> None:
    first, second = create_background(cli, 2)
    result = cli("partitions", "delete", first, "prtn_never", second, "--yes", "--json")
    assert result.exit_code == 6
    assert result.json() == [{"id": first, "deleted": True, "already_deleted": False},
                             {"id": second, "deleted": True, "already_deleted": False}]
    assert cli("partitions", "get", first).exit_code == 6


def test_delete_dry_run(cli: Cli) -> None:
    result = cli("partitions", "delete", "prtn_a", "prtn_b", "--dry-run", "-o", "table")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["DELETE /v1/partitions/prtn_a",
                                          "DELETE /v1/partitions/prtn_b"]
    # In JSON (the default off a terminal) the requests are objects, as create shows them.
    shown = cli("partitions", "delete", "prtn_a", "prtn_b", "--dry-run")
    assert shown.json() == [{"method": "DELETE", "path": "/v1/partitions/prtn_a"},
                            {"method": "DELETE", "path": "/v1/partitions/prtn_b"}]
    assert cli("partitions", "delete", "prtn_a", "--dry-run", "-o", "jsonl").jsonl() == [
        {"method": "DELETE", "path": "/v1/partitions/prtn_a"}]
    assert cli.emu.requests() == []


# ---- auth and settings ---------------------------------------------------------------


def test_missing_key_is_exit_4_with_a_hint(cli: Cli) -> None:
    result = cli("partitions", "list", env={"RETAB_API_KEY": ""})
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [
        "error: no API key configured", "hint: run 'retab auth login', or set RETAB_API_KEY"]


def test_wrong_key_is_exit_4(cli: Cli) -> None:
    result = cli("partitions", "list", "-o", "json", env={"RETAB_API_KEY": "rt_test_wrong_key_1"})
    assert result.exit_code == 4
    assert result.stderr_json()["error"]["type"] == "auth"
    assert "rt_test_wrong_key_1" not in result.stderr
    assert result.stdout == ""


def test_key_with_whitespace_is_refused_without_echo(cli: Cli) -> None:
    result = cli("partitions", "list", env={"RETAB_API_KEY": "rt_test secret"})
    assert result.exit_code == 4
    assert "secret" not in result.stderr


def test_auth_login_status_logout(cli: Cli) -> None:
    env = {"RETAB_API_KEY": ""}
    login = cli("auth", "login", "--with-key", input=cli.emu.api_key + "\n", env=env)
    assert login.exit_code == 0, login.stderr
    config = cli.home / "config" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert cli.emu.api_key in config.read_text()
    status = cli("auth", "status", "--json", env=env)
    assert status.exit_code == 0, status.stderr
    info = status.json()
    assert info["key_works"] is True and info["api_key_source"].startswith("profile 'default'")
    assert cli.emu.api_key not in status.stdout
    listed = cli("partitions", "list", "--json", env=env)
    assert listed.exit_code == 0
    assert cli("auth", "logout", env=env).exit_code == 0
    assert cli("auth", "status", env=env).exit_code == 4


def test_auth_login_refuses_a_bad_key_and_saves_nothing(cli: Cli) -> None:
    result = cli("auth", "login", "--with-key", input="rt_test_not_valid\n",
                 env={"RETAB_API_KEY": ""})
    assert result.exit_code == 4
    assert not (cli.home / "config" / "config.toml").exists()


def test_stored_key_is_not_sent_to_another_base_url(cli: Cli) -> None:
    env = {"RETAB_API_KEY": ""}
    assert cli("auth", "login", "--with-key", input=cli.emu.api_key, env=env).exit_code == 0
    other = {"RETAB_API_KEY": "", "RETAB_API_BASE_URL": "http://127.0.0.1:9"}
    result = cli("partitions", "list", env=other)
    assert result.exit_code == 4
    assert "belongs to" in result.stderr


def test_group_readable_config_warns(cli: Cli) -> None:
    config = cli.home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[profiles.default]\napi_key = "{cli.emu.api_key}"\nbase_url = "{cli.emu.url}"\n')
    os.chmod(config, 0o644)
    result = cli("partitions", "list", "--json", env={"RETAB_API_KEY": ""})
    assert result.exit_code == 0
    assert "readable by others" in result.stderr


def test_corrupt_config_names_the_line_not_the_content(cli: Cli) -> None:
    config = cli.home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[profiles.default]\napi_key = "rt_secret_value\n')
    result = cli("partitions", "list")
    assert result.exit_code == 2
    assert "line 2" in result.stderr and "rt_secret_value" not in result.stderr


def test_unknown_profile_is_a_usage_error(cli: Cli) -> None:
    result = cli("--profile", "ghost", "partitions", "list")
    assert result.exit_code == 2 and "no profile named 'ghost'" in result.stderr


def test_global_options_after_the_subcommand(cli: Cli) -> None:
    result = cli("partitions", "list", "--json", "--api-key", cli.emu.api_key, "--debug",
                 env={"RETAB_API_KEY": ""})
    assert result.exit_code == 0, result.stderr
    assert "visible to other users" in result.stderr
    assert "debug: GET " in result.stderr
    assert cli.emu.api_key not in result.stderr
    assert json.loads(result.stdout) == []


def test_an_auth_failure_in_a_bulk_command_is_reported_once(cli: Cli) -> None:
    bad = {"RETAB_API_KEY": "rt_test_wrong_key_2"}
    got = cli("partitions", "get", "prtn_a", "prtn_b", "prtn_c", env=bad)
    assert got.exit_code == 4
    assert got.stderr.count("error: ") == 1
    assert got.stderr.startswith("error: Invalid API key (request_id req_")
    cancelled = cli("partitions", "cancel", "prtn_a", "prtn_b", env=bad)
    assert cancelled.exit_code == 4
    assert cancelled.stderr.count("error: ") == 1
    assert "stopped: cancelled 0 of 2" in cancelled.stderr
    assert "not cancelled (2): prtn_a prtn_b" in cancelled.stderr


def test_list_before_pages_back_in_the_listing_order(cli: Cli) -> None:
    cli.emu.seed(250)
    newest = cli("partitions", "list", "-n", "200", "-q").stdout.split()
    back = cli("partitions", "list", "-n", "150", "--before", newest[-1], "-q").stdout.split()
    assert back == newest[49:199]
    forward = cli("partitions", "list", "-n", "150", "--after", newest[49], "-q").stdout.split()
    assert forward[:150] == cli("partitions", "list", "--all", "-q").stdout.split()[50:200]


def test_retry_command_for_each_kind_of_document(tmp_path: Path) -> None:
    from retab_cli.creating import CreateOptions
    from retab_cli.documents import from_path, from_url

    options = CreateOptions(key="invoice number", instructions=None, model="retab-micro",
                            consensus=None, no_overlap=True, bust_cache=False, background=True)
    data_url = "data:text/plain;base64," + base64.b64encode(b"Invoice number: 1").decode()
    inline = from_url(data_url, filename="a.txt", mime_type=None)
    assert options.rerun(inline, "k1", wait=False) == (
        f"retab partitions create --url '{data_url}' --key 'invoice number' --model retab-micro "
        "--no-overlap --filename a.txt --background --idempotency-key k1")
    remote = from_url("https://files.example/x.pdf", filename=None, mime_type=None)
    assert options.rerun(remote, "k2", wait=True).endswith(
        "--url https://files.example/x.pdf --key 'invoice number' --model retab-micro "
        "--no-overlap --wait --idempotency-key k2")
    (tmp_path / "doc.txt").write_text("Invoice number: 2")
    local = from_path(str(tmp_path / "doc.txt"), filename=None, mime_type=None, warn=print)
    assert options.rerun(local, "k3", wait=False) == (
        f"retab partitions create {tmp_path / 'doc.txt'} --key 'invoice number' "
        "--model retab-micro --no-overlap --background --idempotency-key k3")
