"""--shard I/N: parsing, the hash rule, and N shards covering every path once."""

from __future__ import annotations

import pytest

from retab_cli.batch.shard import WHOLE, Shard, parse_shard, shard_of
from retab_cli.errors import UsageError


def test_parse_shard() -> None:
    assert parse_shard("2/3") == Shard(2, 3)
    assert parse_shard(" 1 / 1 ") == WHOLE
    assert parse_shard("3/3").label == "3/3"


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "-1/3", "a/b", "3", "1/2/3", "", "1.5/3"])
def test_bad_shards_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard(text)
    assert caught.value.message == (f"invalid --shard {text!r}: expected I/N with "
                                    "1 <= I <= N, e.g. 2/3")
    assert caught.value.exit_code == 2


def test_the_shard_is_the_first_8_bytes_of_sha256_modulo_n() -> None:
    # From `printf 'docs/a.pdf' | sha256sum`: a00d277b2573931f...
    prefix = 0xA00D277B2573931F
    for count in (1, 2, 3, 7, 10):
        assert shard_of("docs/a.pdf", count) == prefix % count
    assert Shard(prefix % 3 + 1, 3).takes("docs/a.pdf")


def test_three_shards_are_disjoint_and_complete_over_1000_paths() -> None:
    paths = [f"dir{i % 17}/doc-{i:04d}.pdf" for i in range(1000)]
    shards = [Shard(i, 3) for i in (1, 2, 3)]
    taken = [{p for p in paths if shard.takes(p)} for shard in shards]
    assert sum(len(t) for t in taken) == 1000
    assert set().union(*taken) == set(paths)
    assert all(len(t) > 250 for t in taken)  # the hash spreads them (a third is 333)
