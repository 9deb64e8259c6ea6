"""Authentication: both headers, mismatches, configured keys and isolation between keys."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .helpers import client, create
from emulator_support import Emulator, start_emulator

KEY_A = "rt_test_alice_000000"
KEY_B = "rt_test_bob_11111111"


@pytest.fixture(scope="module")
def two_keys() -> Iterator[Emulator]:
    emu = start_emulator("--api-key", KEY_A, "--api-key", KEY_B)
    yield emu
    emu.stop()


def call(emu: Emulator, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{emu.url}/v1/partitions", headers=headers, trust_env=False)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": f"Bearer {KEY_A}"}, 200),
        ({"Authorization": f"bearer {KEY_B}"}, 200),
        ({"Api-Key": KEY_A}, 200),
        ({"Authorization": f"Bearer {KEY_A}", "Api-Key": KEY_A}, 200),
        ({"Authorization": f"Bearer {KEY_A}", "Api-Key": KEY_B}, 401),
        ({"Authorization": "Bearer rt_test_emulator"}, 401),
        ({"Authorization": f"Basic {KEY_A}"}, 401),
        ({"Api-Key": "nope"}, 401),
        ({}, 401),
    ],
)
def test_headers(two_keys: Emulator, headers: dict[str, str], status: int) -> None:
    response = call(two_keys, headers)
    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
    if status == 401:
        assert isinstance(response.json()["detail"], str)
        assert KEY_A not in response.text and KEY_B not in response.text


def test_each_key_sees_only_its_own_runs(two_keys: Emulator) -> None:
    two_keys.reset()
    with client(two_keys, KEY_A) as alice, client(two_keys, KEY_B) as bob:
        run = create(alice)
        assert bob.get(f"/v1/partitions/{run['id']}").status_code == 404
        assert bob.post(f"/v1/partitions/{run['id']}/cancel").status_code == 404
        assert bob.delete(f"/v1/partitions/{run['id']}").status_code == 404
        assert bob.get("/v1/partitions").json()["data"] == []
        assert bob.get("/v1/partitions", params={"after": run["id"]}).status_code == 400
        assert alice.get(f"/v1/partitions/{run['id']}").status_code == 200
        assert two_keys.seed(2, api_key=KEY_B) == 2
        assert len(bob.get("/v1/partitions").json()["data"]) == 2
        assert len(alice.get("/v1/partitions").json()["data"]) == 1


def test_keys_from_the_environment() -> None:
    emu = start_emulator(env={"RETAB_EMULATOR_API_KEYS": " rt_env_one , rt_env_two "})
    try:
        assert emu.api_key == "rt_env_one"
        assert call(emu, {"Api-Key": "rt_env_two"}).status_code == 200
        assert call(emu, {"Api-Key": "rt_test_emulator"}).status_code == 401
    finally:
        emu.stop()


def test_openapi_and_docs_need_no_key(two_keys: Emulator) -> None:
    assert httpx.get(f"{two_keys.url}/openapi.json", trust_env=False).status_code == 200
