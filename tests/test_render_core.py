"""The output layer's core: sanitising, JSON, fields, output modes, colour, errors, lists."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from typing import IO, Any

import pytest

from retab_cli import render
from retab_cli.errors import (
    AuthError,
    BadResponseError,
    NotFoundError,
    RejectedError,
    ServerError,
    UsageError,
)
from retab_cli.render import (
    Renderer,
    dumps,
    narrow,
    parse_fields,
    pick,
    resolve_mode,
    sanitize,
    use_color,
)

PARTITION: dict[str, Any] = {
    "id": "prtn_abc",
    "file": {"id": "file_0123456789abcdef", "filename": "a.pdf", "mime_type": "application/pdf"},
    "status": "completed",
    "output": [{"key": "INV-1", "pages": [1, 2]}],
    "usage": {"credits": 3},
    "error": None,
    "future_field": {"nested": [1, 2.5, "x"]},
}


@pytest.fixture
def tty() -> Iterator[IO[str]]:
    """A text stream on a pseudo-terminal (os.isatty is true for it)."""
    master, slave = os.openpty()
    stream = open(slave, "w")  # noqa: SIM115 - closed below
    try:
        yield stream
    finally:
        stream.close()
        os.close(master)


def part(i: int) -> dict[str, Any]:
    return {"id": f"prtn_{i}", "status": "queued", "n": i}


# ---- sanitize --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("bell\x07", "bell\\x07"),
        ("nul\x00", "nul\\x00"),
        ("cr\rover", "cr\\x0dover"),
        ("vt\x0bff\x0c", "vt\\x0bff\\x0c"),
        ("del\x7f", "del\\x7f"),
        ("c1\x9b31m", "c1\\x9b31m"),
        ("nel\x85", "nel\\x85"),
        ("rlo\u202egnp.exe", "rlo\\u202egnp.exe"),
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
        ("café €5 日本", "café €5 日本"),
        ("\u00a0nbsp", "\u00a0nbsp"),
    ],
)
def test_sanitize(text: str, expected: str) -> None:
    assert sanitize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\nb", "a\\nb"),
        ("a\tb", "a\\tb"),
        ("a\rb", "a\\rb"),
        ("a\r\nerror: forged", "a\\r\\nerror: forged"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("\u202e", "\\u202e"),
    ],
)
def test_sanitize_single_line(text: str, expected: str) -> None:
    assert sanitize(text, single_line=True) == expected
    assert "\n" not in sanitize(text, single_line=True)


def test_sanitize_takes_any_object() -> None:
    assert sanitize(42) == "42"
    assert sanitize(None) == "None"


def test_sanitize_leaves_no_raw_control_character() -> None:
    every = "".join(chr(c) for c in range(0x00, 0xA0))
    for single_line in (False, True):
        out = sanitize(every, single_line=single_line)
        allowed = set() if single_line else {"\t", "\n"}
        assert all(ch.isprintable() or ch in allowed for ch in out), single_line


# ---- dumps -------------------------------------------------------------------------------------


def test_dumps_is_ascii_and_keeps_numbers_as_received() -> None:
    assert dumps({"a": "é\u202e", "n": 3, "f": 3.0, "big": 10**30}) == (
        '{"a": "\\u00e9\\u202e", "n": 3, "f": 3.0, "big": 1000000000000000000000000000000}')
    assert dumps([1], indent=2) == "[\n  1\n]"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_dumps_refuses_nan(bad: float) -> None:
    with pytest.raises(ValueError):
        dumps({"x": bad})


# ---- pick / narrow / parse_fields --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("id", "prtn_abc"),
        ("file.filename", "a.pdf"),
        ("file", PARTITION["file"]),
        ("usage.credits", 3),
        ("error", None),
        ("error.code", None),
        ("missing", None),
        ("file.missing", None),
        ("id.length", None),
        ("output.key", None),
        ("future_field.nested", [1, 2.5, "x"]),
    ],
)
def test_pick(path: str, value: Any) -> None:
    assert pick(PARTITION, path) == value


def test_narrow_nests_dotted_paths() -> None:
    narrowed = narrow(PARTITION, ["id", "file.filename", "file.mime_type", "usage.credits", "nope.x"])
    assert narrowed == {
        "id": "prtn_abc",
        "file": {"filename": "a.pdf", "mime_type": "application/pdf"},
        "usage": {"credits": 3},
        "nope": {"x": None},
    }
    assert list(narrowed) == ["id", "file", "usage", "nope"]


def test_narrow_without_fields_is_the_object_itself() -> None:
    assert narrow(PARTITION, None) is PARTITION
    assert narrow(PARTITION, []) is PARTITION
    assert narrow("not a dict", ["id"]) == "not a dict"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["error", "error.code"], {"error": None}),
        (["id", "id.x"], {"id": "prtn_abc"}),
        (["file", "file.filename"], {"file": PARTITION["file"]}),
        (["file.filename", "file"], {"file": PARTITION["file"]}),
        (["file", "file.nope"], {"file": {**PARTITION["file"], "nope": None}}),
    ],
)
def test_narrow_with_overlapping_paths(fields: list[str], expected: dict[str, Any]) -> None:
    original = json.loads(json.dumps(PARTITION))
    assert narrow(original, fields) == expected
    assert original == PARTITION  # the raw object is never changed


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (None, None),
        ("id", ["id"]),
        ("id, status ,file.filename", ["id", "status", "file.filename"]),
        ("id,,status,", ["id", "status"]),
        ("n_consensus,usage.credits", ["n_consensus", "usage.credits"]),
    ],
)
def test_parse_fields(text: str | None, fields: list[str] | None) -> None:
    assert parse_fields(text) == fields


@pytest.mark.parametrize("text", ["file..filename", ".id", "id.", "a-b", "id;rm", "a b", "$x"])
def test_parse_fields_refuses_bad_names(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_fields(text)
    assert caught.value.message.startswith("invalid --fields entry ")
    assert caught.value.message.endswith(": use dotted names like file.filename")


@pytest.mark.parametrize("text", ["", ",", " , "])
def test_parse_fields_needs_one_name(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--fields needs at least one field name$"):
        parse_fields(text)


# ---- resolve_mode / use_color ------------------------------------------------------------------


def test_auto_is_a_table_on_a_terminal_and_json_otherwise(tty: IO[str]) -> None:
    assert resolve_mode(None, False, False, None, tty) == ("table", False)
    assert resolve_mode(None, False, False, None, io.StringIO()) == ("json", False)
    assert resolve_mode("auto", False, False, None, tty) == ("table", False)
    assert resolve_mode("auto", False, False, None, io.StringIO()) == ("json", False)


@pytest.mark.parametrize(
    ("output", "json_flag", "quiet", "default", "expected"),
    [
        ("json", False, False, None, ("json", True)),
        ("jsonl", False, False, None, ("jsonl", True)),
        ("table", False, False, None, ("table", False)),
        ("ids", False, False, None, ("ids", False)),
        (None, True, False, None, ("json", True)),
        (None, False, True, None, ("ids", False)),
        ("json", True, False, None, ("json", True)),
        ("ids", False, True, None, ("ids", False)),
        (None, False, False, "jsonl", ("jsonl", False)),
        (None, False, False, "json", ("json", False)),
        (None, False, False, "table", ("table", False)),
        (None, False, False, "", ("json", False)),
        ("table", False, False, "jsonl", ("table", False)),
        (None, True, False, "table", ("json", True)),
        (None, False, True, "jsonl", ("ids", False)),
    ],
)
def test_resolve_mode(output: str | None, json_flag: bool, quiet: bool, default: str | None,
                      expected: tuple[str, bool]) -> None:
    assert resolve_mode(output, json_flag, quiet, default, io.StringIO()) == expected


@pytest.mark.parametrize(
    ("output", "json_flag", "quiet"),
    [("table", True, False), ("jsonl", True, False), ("json", False, True), (None, True, True),
     ("table", False, True), ("jsonl", True, True)],
)
def test_conflicting_output_options(output: str | None, json_flag: bool, quiet: bool) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_mode(output, json_flag, quiet, None, io.StringIO())
    assert caught.value.message == "conflicting output options: choose one of -o, --json and -q"


def test_output_modes_in_any_letter_case() -> None:
    assert resolve_mode("JSON", False, False, None, io.StringIO()) == ("json", True)
    assert resolve_mode(None, False, False, "Table", io.StringIO()) == ("table", False)


@pytest.mark.parametrize(("output", "default"), [("yaml", None), (None, "xml")])
def test_unknown_output_mode(output: str | None, default: str | None) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_mode(output, False, False, default, io.StringIO())
    bad = output or default
    assert caught.value.message == (
        f"invalid output mode {bad!r}: choose from auto, table, json, jsonl, ids, csv")


def test_use_color(tty: IO[str]) -> None:
    pipe = io.StringIO()
    assert use_color("auto", tty) is True
    assert use_color("auto", pipe) is False
    assert use_color("always", pipe) is True
    assert use_color("always", tty) is True
    assert use_color("never", tty) is False
    assert use_color("never", pipe) is False


def test_isatty_survives_streams_without_a_descriptor(tty: IO[str]) -> None:
    closed = open(os.devnull, "w")  # noqa: SIM115
    closed.close()
    assert render.isatty(closed) is False
    assert render.isatty(io.StringIO()) is False
    assert render.isatty(tty) is True


# ---- errors ---------------------------------------------------------------------------------------


def test_error_is_one_line_with_request_id_and_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    Renderer("table").error(ServerError("the server failed (502)", status=502, request_id="req_42"))
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("error: the server failed (502) (request_id req_42)\n"
                   "hint: try again later; add --debug to see each request\n")


def test_error_without_request_id_or_hint(capsys: pytest.CaptureFixture[str]) -> None:
    Renderer("json").error(UsageError("bad option"))
    assert capsys.readouterr() == ("", "error: bad option\n")


def test_error_prefixes_the_subject_when_the_message_does_not_name_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    r = Renderer("json")
    r.error(NotFoundError("Partition not found", status=404, partition_id="prtn_x",
                          request_id="req_1"))
    r.error(NotFoundError("prtn_y was deleted", status=404, partition_id="prtn_y"))
    r.error(UsageError("is empty", file="a.pdf"))
    r.error(UsageError("a.pdf is empty", file="a.pdf"))
    assert capsys.readouterr().err.splitlines() == [
        "error: prtn_x: Partition not found (request_id req_1)",
        "hint: run 'retab partitions list' to see the partitions this key can access",
        "error: prtn_y was deleted",
        "hint: run 'retab partitions list' to see the partitions this key can access",
        "error: a.pdf: is empty",
        "error: a.pdf is empty",
    ]


def test_error_json_on_stderr_only_when_json_was_asked_explicitly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = AuthError("invalid API key", status=401, request_id="req_9")
    Renderer("json", explicit_json=False).error(error)
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: invalid API key (request_id req_9)\n"
                              "hint: check the key with 'retab auth status'\n")
    Renderer("jsonl", explicit_json=True).error(error)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[:2] == ["error: invalid API key (request_id req_9)",
                         "hint: check the key with 'retab auth status'"]
    assert len(lines) == 3
    assert json.loads(lines[2]) == {"error": {
        "type": "auth", "message": "invalid API key", "status": 401, "request_id": "req_9",
        "partition_id": None, "file": None, "exit_code": 4}}


def test_server_strings_cannot_forge_lines_or_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    evil = "bad\x1b[2K\rerror: all good\nhint: rm -rf ~\u202e"
    Renderer("json", explicit_json=True).error(
        RejectedError(evil, status=422, request_id="req_1\nforged", partition_id="prtn_1"))
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.split("\n")
    assert lines[-1] == ""
    assert len(lines) == 3  # the error line, the JSON object, the final newline
    assert lines[0] == ("error: prtn_1: bad\\x1b[2K\\rerror: all good\\nhint: rm -rf ~\\u202e "
                        "(request_id req_1\\nforged)")
    assert "\x1b" not in err and "\r" not in err and "\u202e" not in err
    assert json.loads(lines[1])["error"]["message"] == evil


def test_error_hint_given_by_the_error_wins(capsys: pytest.CaptureFixture[str]) -> None:
    Renderer("json").error(BadResponseError("unusable response", hint="check the proxy"))
    assert capsys.readouterr().err == "error: unusable response\nhint: check the proxy\n"


# ---- stderr helpers -----------------------------------------------------------------------------


def test_info_is_silenced_by_quiet_but_warnings_are_not(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = Renderer("ids")
    assert quiet.quiet
    quiet.info("progress")
    quiet.warn("warning: careful\x1b[0m")
    quiet.notice("retrying")
    Renderer("json").info("shown")
    assert capsys.readouterr() == ("", "warning: careful\\x1b[0m\nretrying\nshown\n")


# ---- streamed lists -----------------------------------------------------------------------------


def stream(r: Renderer, pages: list[list[dict[str, Any]]]) -> str:
    r.begin_list()
    for page in pages:
        r.list_items(page)
    r.end_list({})
    return ""


@pytest.mark.parametrize(
    "pages",
    [[], [[]], [[part(1)]], [[part(1), part(2)]], [[part(1), part(2)], [part(3)], [part(4), part(5)]],
     [[], [part(1)], []]],
)
def test_json_list_is_a_well_formed_array(
    capsys: pytest.CaptureFixture[str], pages: list[list[dict[str, Any]]]
) -> None:
    stream(Renderer("json"), pages)
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == [item for page in pages for item in page]
    assert out.endswith("\n")


def test_json_list_writes_nothing_before_the_first_page(capsys: pytest.CaptureFixture[str]) -> None:
    r = Renderer("json")
    r.begin_list()
    r.list_items([])
    assert capsys.readouterr().out == ""
    r.list_items([part(1)])
    first = capsys.readouterr().out
    assert first.startswith("[\n  ")
    r.list_items([part(2)])
    assert capsys.readouterr().out.startswith(",\n  ")
    r.end_list({})
    assert capsys.readouterr().out == "\n]\n"


def test_json_list_of_nothing_is_an_empty_array(capsys: pytest.CaptureFixture[str]) -> None:
    r = Renderer("json")
    r.begin_list()
    r.end_list({})
    assert capsys.readouterr().out == "[]\n"


def test_json_list_can_be_reused(capsys: pytest.CaptureFixture[str]) -> None:
    r = Renderer("json")
    stream(r, [[part(1)]])
    capsys.readouterr()
    stream(r, [])
    assert capsys.readouterr().out == "[]\n"


def test_json_list_narrows_fields(capsys: pytest.CaptureFixture[str]) -> None:
    stream(Renderer("json", fields=["id"]), [[part(1)], [part(2)]])
    assert json.loads(capsys.readouterr().out) == [{"id": "prtn_1"}, {"id": "prtn_2"}]


def test_jsonl_list_is_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    stream(Renderer("jsonl"), [[part(1), part(2)], [], [part(3)]])
    out = capsys.readouterr().out
    assert out.splitlines() == [dumps(part(1)), dumps(part(2)), dumps(part(3))]
    assert out.endswith("\n")


def test_jsonl_list_of_nothing_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    stream(Renderer("jsonl"), [[]])
    assert capsys.readouterr() == ("", "")


def test_ids_list_sanitises_each_id(capsys: pytest.CaptureFixture[str]) -> None:
    stream(Renderer("ids"), [[part(1)], [{"id": "prtn_\x1b[2J\nx"}, {"status": "no id"}]])
    assert capsys.readouterr().out == "prtn_1\nprtn_\\x1b[2J\\nx\n\n"


# ---- partitions() -------------------------------------------------------------------------------


def test_single_partition_is_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    Renderer("json").partitions([PARTITION], single=True)
    out = capsys.readouterr().out
    assert json.loads(out) == PARTITION
    assert out == dumps(PARTITION, indent=2) + "\n"


def test_several_or_stdin_ids_are_an_array(capsys: pytest.CaptureFixture[str]) -> None:
    Renderer("json").partitions([PARTITION], single=False)
    assert json.loads(capsys.readouterr().out) == [PARTITION]
    Renderer("json").partitions([PARTITION, part(2)], single=True)
    assert json.loads(capsys.readouterr().out) == [PARTITION, part(2)]
    Renderer("json").partitions([], single=False)
    assert json.loads(capsys.readouterr().out) == []


def test_partitions_jsonl_ids_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    Renderer("jsonl").partitions([PARTITION, part(2)], single=False)
    assert capsys.readouterr().out == dumps(PARTITION) + "\n" + dumps(part(2)) + "\n"
    Renderer("ids").partitions([PARTITION, part(2)], single=False)
    assert capsys.readouterr().out == "prtn_abc\nprtn_2\n"
    Renderer("json", fields=["id", "file.filename"]).partitions([PARTITION], single=True)
    assert json.loads(capsys.readouterr().out) == {"id": "prtn_abc", "file": {"filename": "a.pdf"}}


def test_json_output_refuses_nan_rather_than_printing_invalid_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ValueError):
        Renderer("json").partitions([{"id": "x", "score": float("nan")}], single=True)
    assert capsys.readouterr().out == ""


def test_json_is_never_coloured_even_when_forced(capsys: pytest.CaptureFixture[str]) -> None:
    Renderer("json", color="always").partitions([PARTITION], single=True)
    assert "\x1b" not in capsys.readouterr().out


def test_render_core_stays_free_of_rich() -> None:
    import subprocess
    import sys

    code = ("import sys, retab_cli.render; "
            "print(sorted(m for m in ('rich', 'httpx', 'pydantic') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_unicode_line_separators_cannot_forge_a_line() -> None:
    from retab_cli.render import sanitize as clean

    assert clean("a\u2028b\u2029c", single_line=True) == "a\\u2028b\\u2029c"


# ---- stderr and stdout when their readers go away (render/streams.py) ------------------------


class _Failing(io.StringIO):
    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


def test_every_stderr_writer_makes_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    r = Renderer("json")
    outside = "scan\n::add-mask::x\r\n::error::y\u2028z"
    for write in (r.info, r.warn, r.notice):
        write(f"warning: cannot tell the type of {outside}")
    r.error(BadResponseError(outside, request_id="req_\nx", hint=f"retry {outside}"))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 5
    assert not [line for line in lines if line.startswith("::")]
    assert lines[0] == ("warning: cannot tell the type of scan\\n::add-mask::x\\r\\n::error::y"
                        "\\u2028z")


@pytest.mark.parametrize("error", [BrokenPipeError(32, "EPIPE"), OSError(28, "ENOSPC")])
def test_a_stderr_that_cannot_be_written_is_dropped(monkeypatch: pytest.MonkeyPatch,
                                                    error: OSError) -> None:
    import sys

    monkeypatch.setattr(sys, "stderr", _Failing(error))
    r = Renderer("json", explicit_json=True)
    r.warn("gone")
    r.error(BadResponseError("unusable"))  # no exception: the code is the command's
    assert r.reported == [1]


def test_stdout_keeps_epipe_and_turns_other_failures_into_one_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys, "stdout", _Failing(BrokenPipeError(32, "EPIPE")))
    with pytest.raises(BrokenPipeError):
        Renderer("ids").id_line("prtn_a")
    monkeypatch.setattr(sys, "stdout", _Failing(OSError(28, "No space left on device")))
    with pytest.raises(UsageError, match=r"^cannot write to stdout: No space left on device$"):
        Renderer("ids").id_line("prtn_a")


def test_a_stream_closed_before_start_writes_as_a_broken_pipe() -> None:
    from retab_cli.render.streams import ClosedStream

    closed = ClosedStream(1)
    assert not closed.isatty() and closed.fileno() == 1
    with pytest.raises(BrokenPipeError):
        closed.write("x")


def test_ids_and_dry_run_lines_on_stdout_are_sanitised(capsys: pytest.CaptureFixture[str]) -> None:
    r = Renderer("ids")
    hostile = "prtn_\x1b]52;c;aGk=\x07\u202e\nx"
    r.result_row({"id": hostile}, hostile, "cancelled", "")
    r.dry_run([f"POST /v1/partitions/{hostile}/cancel"], "cancel 1 partition(s)")
    shown = "prtn_\\x1b]52;c;aGk=\\x07\\u202e\\nx"
    assert capsys.readouterr().out == f"{shown}\nPOST /v1/partitions/{shown}/cancel\n"


def test_a_list_stream_that_stops_early_closes_its_json_array(
        capsys: pytest.CaptureFixture[str]) -> None:
    r = Renderer("json")
    with pytest.raises(KeyboardInterrupt), r.list_stream():
        r.list_items([part(1), part(2)])
        raise KeyboardInterrupt
    assert json.loads(capsys.readouterr().out) == [part(1), part(2)]
    with pytest.raises(ValueError), r.list_stream():
        raise ValueError  # nothing begun: nothing printed
    assert capsys.readouterr().out == ""


def test_sanitize_escapes_lone_surrogates() -> None:
    assert render.sanitize("a\ud800b") == "a\\ud800b"
