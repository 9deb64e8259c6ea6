"""Settings: flags > environment > profile, sources, stored keys, colour, the config file."""

from __future__ import annotations

import io
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from retab_cli.errors import AuthError, UsageError
from retab_cli.settings import (
    DEFAULT_BASE_URL,
    GlobalOptions,
    ProfileEntry,
    ProfileList,
    Settings,
    check_key,
    config_dir,
    config_path,
    list_profiles,
    load_config,
    read_key_stream,
    remove_profile,
    resolve,
    save_profile,
    switch_profile,
)

from cli_support import Warnings

KEY = "rt_test_profilekey000000"
ENV_KEY = "rt_test_envkey111111111"
FLAG_KEY = "rt_test_flagkey22222222"
STAGING = "https://staging.retab.example"

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")




@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"RETAB_CONFIG_DIR": str(tmp_path / "config")}


def cfg(env: dict[str, str]) -> Path:
    return Path(env["RETAB_CONFIG_DIR"]) / "config.toml"


def write_config(env: dict[str, str], text: str, mode: int = 0o600) -> Path:
    path = cfg(env)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def two_profiles(env: dict[str, str]) -> Path:
    return write_config(env, f"""
[profiles.default]
api_key = "{KEY}"
base_url = "{DEFAULT_BASE_URL}"

[profiles.staging]
api_key = "rt_test_staging333333333"
base_url = "{STAGING}"
""")


def run(env: dict[str, str], warnings: Warnings | None = None, **flags: Any) -> Settings:
    return resolve(GlobalOptions(**flags), env, warn=warnings if warnings is not None else Warnings())


def refusal(env: dict[str, str], **flags: Any) -> AuthError:
    """Resolving succeeds with the key refused; the refusal is raised when a key is needed."""
    s = run(env, **flags)
    assert s.api_key is None and s.key_refused is not None
    with pytest.raises(AuthError) as caught:
        s.require_key()
    assert caught.value.message == s.key_refused
    return caught.value


# ---- where the config lives ----------------------------------------------------------------


def test_config_location(tmp_path: Path) -> None:
    assert config_path({"RETAB_CONFIG_DIR": "/x/y"}) == Path("/x/y/config.toml")
    assert config_dir({"XDG_CONFIG_HOME": "/xdg"}) == Path("/xdg/retab")
    assert config_dir({"RETAB_CONFIG_DIR": "/a", "XDG_CONFIG_HOME": "/b"}) == Path("/a")
    assert config_dir({}) == Path.home() / ".config" / "retab"


# ---- defaults and precedence -----------------------------------------------------------------


def test_defaults_with_nothing_configured(env: dict[str, str], warnings: Warnings) -> None:
    s = run(env, warnings)
    assert (s.profile, s.base_url, s.base_url_source) == ("default", DEFAULT_BASE_URL, "default")
    assert (s.api_key, s.api_key_source, s.key_refused) == (None, "not set", None)
    assert s.profile_source == "default"
    assert (s.max_rps, s.debug, s.color, s.output) == (5.0, False, "auto", None)
    assert s.config_path == cfg(env)
    assert warnings == []
    with pytest.raises(AuthError) as caught:
        s.require_key()
    assert caught.value.message == "no API key configured"
    assert caught.value.hint == "run 'retab auth login', or set RETAB_API_KEY"


def test_profile_values_are_used_and_their_source_reported(env: dict[str, str]) -> None:
    path = two_profiles(env)
    s = run(env)
    assert s.api_key == KEY
    assert s.require_key() == KEY
    assert s.api_key_source == f"profile 'default' in {path}"
    assert s.base_url_source == f"profile 'default' in {path}"


def test_environment_beats_the_profile(env: dict[str, str], warnings: Warnings) -> None:
    two_profiles(env)
    env.update(RETAB_API_KEY=ENV_KEY, RETAB_API_BASE_URL=DEFAULT_BASE_URL)
    s = run(env, warnings)
    assert (s.api_key, s.api_key_source) == (ENV_KEY, "RETAB_API_KEY")
    assert (s.base_url, s.base_url_source) == (DEFAULT_BASE_URL, "RETAB_API_BASE_URL")
    assert warnings == []


def test_flags_beat_the_environment(env: dict[str, str], warnings: Warnings) -> None:
    env.update(RETAB_API_KEY=ENV_KEY, RETAB_API_BASE_URL="https://env.example", RETAB_MAX_RPS="2",
               NO_COLOR="", RETAB_DEBUG="")
    s = run(env, warnings, api_key=FLAG_KEY, base_url="https://flag.example", max_rps=7.0,
            debug=True)
    assert (s.api_key, s.api_key_source) == (FLAG_KEY, "--api-key")
    assert (s.base_url, s.base_url_source) == ("https://flag.example", "--base-url")
    assert (s.max_rps, s.debug) == (7.0, True)
    assert warnings == [
        "warning: --api-key on the command line is visible to other users of this machine; "
        "prefer RETAB_API_KEY or 'retab auth login'"
    ]


def test_retab_profile_selects_a_profile_but_the_environment_still_wins(
    env: dict[str, str], warnings: Warnings
) -> None:
    path = two_profiles(env)
    env.update(RETAB_PROFILE="staging")
    s = run(env, warnings)
    assert (s.profile, s.base_url, s.api_key) == ("staging", STAGING, "rt_test_staging333333333")
    assert s.api_key_source == f"profile 'staging' in {path}"
    env.update(RETAB_API_KEY=ENV_KEY)
    s = run(env, warnings)
    assert (s.api_key, s.api_key_source) == (ENV_KEY, "RETAB_API_KEY")
    assert warnings == []


def test_explicit_profile_beats_the_environment_with_a_warning(
    env: dict[str, str], warnings: Warnings
) -> None:
    path = two_profiles(env)
    env.update(RETAB_API_KEY=ENV_KEY, RETAB_API_BASE_URL="https://env.example")
    s = run(env, warnings, profile="staging")
    assert (s.profile, s.api_key, s.base_url) == ("staging", "rt_test_staging333333333", STAGING)
    assert s.api_key_source == s.base_url_source == f"profile 'staging' in {path}"
    assert s.key_refused is None
    assert sorted(warnings) == [
        "warning: --profile overrides RETAB_API_KEY from the environment",
        "warning: --profile staging overrides RETAB_API_BASE_URL from the environment",
    ]


def test_explicit_profile_only_beats_the_environment_for_values_it_defines(
    env: dict[str, str], warnings: Warnings
) -> None:
    path = write_config(env, '[profiles.keyonly]\napi_key = "rt_test_keyonly44444444"\n')
    env.update(RETAB_API_BASE_URL="http://127.0.0.1:9000")
    s = run(env, warnings, profile="keyonly")
    assert (s.base_url, s.base_url_source) == ("http://127.0.0.1:9000", "RETAB_API_BASE_URL")
    # The key was stored for the default base URL, so it is not sent to the env's URL.
    assert s.api_key is None
    assert s.api_key_source == f"profile 'keyonly' in {path}"
    assert s.key_refused == (f"the key stored in profile 'keyonly' belongs to {DEFAULT_BASE_URL}; "
                             "not sending it to http://127.0.0.1:9000")
    assert str(path) not in s.key_refused
    assert warnings == []


def test_explicit_profile_that_does_not_exist(env: dict[str, str]) -> None:
    path = two_profiles(env)
    with pytest.raises(UsageError) as caught:
        run(env, profile="nope")
    assert caught.value.message == f"no profile named 'nope' in {path}"
    assert caught.value.hint == ("known profiles: default, staging; "
                                 "to create it: retab auth login --profile nope")
    with pytest.raises(UsageError) as caught:
        run({"RETAB_CONFIG_DIR": str(path.parent / "missing")}, profile="x")
    assert caught.value.message == f"no profile named 'x' in {path.parent / 'missing' / path.name}"
    assert caught.value.hint == ("no profiles are configured; "
                                 "to create it: retab auth login --profile x")


def test_retab_profile_naming_a_missing_profile_is_not_an_error(env: dict[str, str]) -> None:
    two_profiles(env)
    env.update(RETAB_PROFILE="later")
    s = run(env)
    assert (s.profile, s.api_key, s.api_key_source) == ("later", None, "not set")


# ---- auth login creates a profile ---------------------------------------------------------------


def test_creating_accepts_a_profile_that_does_not_exist_yet(env: dict[str, str],
                                                           warnings: Warnings) -> None:
    path = two_profiles(env)
    s = resolve(GlobalOptions(profile="new"), env, warn=warnings, creating=True)
    assert (s.profile, s.profile_source, s.base_url, s.base_url_source) == (
        "new", "--profile", DEFAULT_BASE_URL, "default")
    assert (s.api_key, s.api_key_source, s.key_refused) == (None, "not set", None)
    assert s.config_path == path
    assert warnings == []
    staging = resolve(GlobalOptions(profile="new", base_url=STAGING), env, creating=True)
    assert (staging.base_url, staging.base_url_source) == (STAGING, "--base-url")


def test_creating_uses_the_base_url_of_an_existing_profile(env: dict[str, str]) -> None:
    path = two_profiles(env)
    s = resolve(GlobalOptions(profile="staging"), env, creating=True)
    assert (s.base_url, s.base_url_source) == (STAGING, f"profile 'staging' in {path}")


def test_creating_looks_up_no_key(env: dict[str, str], tmp_path: Path, warnings: Warnings) -> None:
    # auth login reads its own key: an unreadable key file or a bad stored key is no obstacle.
    write_config(env, '[profiles.default]\napi_key = "rt bad key"\n')
    env.update(RETAB_API_KEY_FILE=str(tmp_path / "missing"))
    s = resolve(GlobalOptions(), env, warn=warnings, creating=True)
    assert (s.api_key, s.api_key_source, s.key_refused) == (None, "not set", None)
    assert warnings == []


def test_without_creating_an_unknown_profile_is_still_refused(env: dict[str, str]) -> None:
    two_profiles(env)
    with pytest.raises(UsageError, match=r"^no profile named 'new' in "):
        resolve(GlobalOptions(profile="new"), env)


def test_unknown_profile_hint_quotes_a_name_the_shell_would_split(env: dict[str, str]) -> None:
    write_config(env, '[profiles."odd\\nname"]\n[profiles.plain]\n')
    with pytest.raises(UsageError) as caught:
        run(env, profile="my staging")
    assert caught.value.hint == ('known profiles: "odd\\nname", plain; '
                                 "to create it: retab auth login --profile 'my staging'")


def test_a_bad_stored_key_is_refused_when_needed_not_when_resolving(env: dict[str, str]) -> None:
    # So that `auth login` can replace it and `auth logout` can remove it.
    path = write_config(env, '[profiles.default]\napi_key = "rt bad key"\n')
    error = refusal(env)
    assert error.message == (f"the API key from profile 'default' in {path} contains whitespace, "
                             "control or non-ASCII characters; refusing to send it")
    assert error.hint == "run 'retab auth login --profile default'"
    assert run(env).api_key_source == f"profile 'default' in {path}"
    save_profile(path, "default", {"api_key": KEY})
    assert run(env).api_key == KEY


# ---- the active profile -----------------------------------------------------------------------


def test_active_profile_in_the_config_is_used(env: dict[str, str], warnings: Warnings) -> None:
    path = two_profiles(env)
    path.write_text('active_profile = "staging"\n' + path.read_text())
    s = run(env, warnings)
    assert (s.profile, s.base_url, s.api_key) == ("staging", STAGING, "rt_test_staging333333333")
    assert s.profile_source == f"active_profile in {path}"
    assert warnings == []


def test_retab_profile_and_the_flag_beat_the_active_profile(env: dict[str, str]) -> None:
    path = two_profiles(env)
    switch_profile(path, "staging")
    env.update(RETAB_PROFILE="default")
    s = run(env)
    assert (s.profile, s.profile_source, s.api_key) == ("default", "RETAB_PROFILE", KEY)
    env.update(RETAB_PROFILE="staging")
    s = run(env, profile="default")
    assert (s.profile, s.profile_source, s.api_key) == ("default", "--profile", KEY)


def test_the_environment_still_beats_the_active_profiles_values(env: dict[str, str],
                                                                warnings: Warnings) -> None:
    # Like RETAB_PROFILE, and unlike --profile: the switch is a default, not an override.
    path = two_profiles(env)
    switch_profile(path, "staging")
    env.update(RETAB_API_KEY=ENV_KEY)
    s = run(env, warnings)
    assert (s.profile, s.api_key, s.api_key_source) == ("staging", ENV_KEY, "RETAB_API_KEY")
    assert warnings == []


def test_active_profile_naming_a_missing_profile_acts_like_retab_profile(env: dict[str, str]) -> None:
    path = write_config(env, f'active_profile = "gone"\n[profiles.default]\napi_key = "{KEY}"\n')
    s = run(env)
    assert (s.profile, s.profile_source, s.api_key) == ("gone", f"active_profile in {path}", None)
    assert s.api_key_source == "not set"


@posix_only
def test_switch_profile_writes_active_profile_atomically_and_privately(env: dict[str, str]) -> None:
    path = two_profiles(env)
    path.chmod(0o644)
    switch_profile(path, "staging")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(path, Warnings()) == {
        "active_profile": "staging",
        "profiles": {"default": {"api_key": KEY, "base_url": DEFAULT_BASE_URL},
                     "staging": {"api_key": "rt_test_staging333333333", "base_url": STAGING}}}
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]


def test_switch_to_an_unknown_profile_is_exit_2_listing_the_known_ones(env: dict[str, str]) -> None:
    path = two_profiles(env)
    before = path.read_bytes()
    with pytest.raises(UsageError) as caught:
        switch_profile(path, "prod")
    assert caught.value.exit_code == 2
    assert caught.value.message == f"no profile named 'prod' in {path}"
    assert caught.value.hint == ("known profiles: default, staging; "
                                 "to create it: retab auth login --profile prod")
    assert path.read_bytes() == before


def test_switch_to_default_always_works_and_clears_the_choice(env: dict[str, str]) -> None:
    path = write_config(env, '[profiles.staging]\napi_key = "rt_test_s"\n')
    switch_profile(path, "staging")
    switch_profile(path, "default")  # not in the file: it is the fallback
    assert "active_profile" not in load_config(path, Warnings())
    assert run(env).profile_source == "default"


def test_switch_that_changes_nothing_writes_nothing(env: dict[str, str]) -> None:
    missing = cfg(env)
    switch_profile(missing, "default")
    assert not missing.parent.exists()


def test_removing_the_active_profile_makes_the_default_active_again(env: dict[str, str]) -> None:
    path = two_profiles(env)
    switch_profile(path, "staging")
    assert remove_profile(path, "staging") is True
    assert "active_profile" not in load_config(path, Warnings())
    s = run(env)
    assert (s.profile, s.profile_source, s.api_key) == ("default", "default", KEY)


def test_saving_a_profile_keeps_the_active_choice(env: dict[str, str]) -> None:
    path = two_profiles(env)
    switch_profile(path, "staging")
    save_profile(path, "default", {"api_key": "rt_test_other"})
    assert load_config(path, Warnings())["active_profile"] == "staging"


# ---- auth list ------------------------------------------------------------------------------------


def listing_config(env: dict[str, str]) -> Path:
    return write_config(env, f"""
[profiles.default]
api_key = "{KEY}"

[profiles.staging]
api_key = "rt_test_staging333333333"
base_url = "{STAGING}"

[profiles.empty]
base_url = "{STAGING}"

[profiles.broken]
api_key = "rt_\u201dbroken_QZQZ"
""")


def test_list_profiles_masks_keys_and_marks_the_active_one(env: dict[str, str]) -> None:
    path = listing_config(env)
    listing = list_profiles(GlobalOptions(), env)
    assert listing == ProfileList(path, "default", "default", [
        ProfileEntry("default", DEFAULT_BASE_URL, "rt_...0000", active=True),
        ProfileEntry("staging", STAGING, "rt_...3333", active=False),
        ProfileEntry("empty", STAGING, "none", active=False),
        ProfileEntry("broken", DEFAULT_BASE_URL, "invalid", active=False),
    ])
    assert listing.as_json() == {
        "config_file": str(path), "active": "default", "active_source": "default",
        "profiles": [
            {"name": "default", "base_url": DEFAULT_BASE_URL, "api_key": "rt_...0000",
             "active": True},
            {"name": "staging", "base_url": STAGING, "api_key": "rt_...3333", "active": False},
            {"name": "empty", "base_url": STAGING, "api_key": "none", "active": False},
            {"name": "broken", "base_url": DEFAULT_BASE_URL, "api_key": "invalid",
             "active": False},
        ]}
    assert "QZQZ" not in repr(listing) and "rt_test" not in repr(listing)


@pytest.mark.parametrize(("flags", "extra_env", "active", "source"), [
    ({"profile": "empty"}, {"RETAB_PROFILE": "default"}, "empty", "--profile"),
    ({}, {"RETAB_PROFILE": "empty"}, "empty", "RETAB_PROFILE"),
    ({}, {}, "staging", "active_profile in {path}"),
])
def test_list_profiles_says_why_a_profile_is_active(
    env: dict[str, str], flags: dict[str, Any], extra_env: dict[str, str], active: str, source: str
) -> None:
    path = listing_config(env)
    switch_profile(path, "staging")
    env.update(extra_env)
    listing = list_profiles(GlobalOptions(**flags), env)
    assert (listing.active, listing.active_source) == (active, source.format(path=path))
    assert [p.name for p in listing.profiles if p.active] == [active]


def test_list_profiles_with_no_config_and_an_active_profile_not_in_it(env: dict[str, str]) -> None:
    assert list_profiles(GlobalOptions(), env) == ProfileList(cfg(env), "default", "default", [])
    env.update(RETAB_PROFILE="later")
    listing = list_profiles(GlobalOptions(), env)
    assert (listing.active, listing.profiles) == ("later", [])


# ---- what auth status shows --------------------------------------------------------------------


def test_describe_key(env: dict[str, str]) -> None:
    assert run(env).describe_key() == "not set"
    env.update(RETAB_API_KEY=ENV_KEY)
    assert run(env).describe_key() == "rt_...1111  (from RETAB_API_KEY)"
    env.update(RETAB_API_KEY="rt bad")
    assert run(env).describe_key() == "refused  (from RETAB_API_KEY)"


# ---- a stored key belongs to its base URL --------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "extra_env"),
    [({"base_url": "https://evil.example"}, {}),
     ({}, {"RETAB_API_BASE_URL": "https://evil.example"})],
)
def test_stored_key_is_not_sent_to_another_base_url(
    env: dict[str, str], flags: dict[str, Any], extra_env: dict[str, str]
) -> None:
    two_profiles(env)
    env.update(extra_env)
    s = run(env, **flags)
    assert s.api_key is None
    assert s.api_key_source == f"profile 'default' in {cfg(env)}"
    assert s.base_url == "https://evil.example"
    assert s.key_refused == (f"the key stored in profile 'default' belongs to {DEFAULT_BASE_URL}; "
                             "not sending it to https://evil.example")
    assert KEY not in repr(s)
    with pytest.raises(AuthError) as caught:
        s.require_key()
    assert caught.value.message == s.key_refused
    assert caught.value.hint == "run 'retab auth login --profile default' for this base URL"
    assert KEY not in caught.value.message


def test_stored_key_matches_its_base_url_with_or_without_trailing_slash(env: dict[str, str]) -> None:
    two_profiles(env)
    s = run(env, base_url=DEFAULT_BASE_URL + "/")
    assert s.api_key == KEY
    assert s.key_refused is None


def test_stored_key_without_base_url_belongs_to_the_default(env: dict[str, str]) -> None:
    write_config(env, f'[profiles.default]\napi_key = "{KEY}"\n')
    assert run(env).api_key == KEY
    assert run(env, base_url=STAGING).api_key is None


def test_env_key_is_sent_to_any_base_url(env: dict[str, str]) -> None:
    two_profiles(env)
    env.update(RETAB_API_KEY=ENV_KEY)
    s = run(env, base_url="https://other.example")
    assert (s.api_key, s.key_refused) == (ENV_KEY, None)


# ---- key checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["rt test", "rt_test\n", "\trt_test", "rt_\x1b[31m", "rt_\x7f",
                                 "rt_\u200etest", "rt_\u00a0nbsp"])
def test_keys_with_whitespace_or_controls_are_refused_without_echo(env: dict[str, str],
                                                                   bad: str) -> None:
    env.update(RETAB_API_KEY=bad)
    error = refusal(env)
    assert error.message == ("the API key from RETAB_API_KEY contains whitespace, control or "
                             "non-ASCII characters; refusing to send it")
    assert error.hint is None
    assert bad not in error.message and "rt_" not in error.message
    assert bad not in repr(error)


def test_bad_flag_key_is_named_by_its_source(env: dict[str, str]) -> None:
    assert refusal(env, api_key="two words").message.startswith(
        "the API key from --api-key contains whitespace")


def test_empty_environment_values_count_as_unset(env: dict[str, str]) -> None:
    two_profiles(env)
    env.update(RETAB_API_KEY="", RETAB_API_BASE_URL="", RETAB_PROFILE="", RETAB_MAX_RPS="",
               RETAB_API_KEY_FILE="", RETAB_OUTPUT="")
    s = run(env)
    assert (s.profile, s.api_key, s.base_url, s.max_rps, s.output) == (
        "default", KEY, DEFAULT_BASE_URL, 5.0, None)


# ---- RETAB_API_KEY_FILE -----------------------------------------------------------------------


@pytest.mark.parametrize(("content", "key"), [(f"{ENV_KEY}\n", ENV_KEY), (ENV_KEY, ENV_KEY)])
def test_key_file_strips_one_trailing_newline(
    env: dict[str, str], tmp_path: Path, content: str, key: str
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(content)
    env.update(RETAB_API_KEY_FILE=str(key_file))
    s = run(env)
    assert s.api_key == key
    assert s.api_key_source == f"RETAB_API_KEY_FILE ({key_file})"


def test_key_file_with_a_crlf_or_cr_line_end_is_read_as_one_newline(env: dict[str, str],
                                                               tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    env.update(RETAB_API_KEY_FILE=str(key_file))
    for ending in (b"\r\n", b"\r"):
        key_file.write_bytes(ENV_KEY.encode() + ending)
        assert run(env).api_key == ENV_KEY


@pytest.mark.parametrize("content", [f"{ENV_KEY}\n\n", f"{ENV_KEY}\r\n\r\n", f" {ENV_KEY}\n",
                                     f"{ENV_KEY} \n", f"\n{ENV_KEY}"])
def test_key_file_with_more_than_one_newline_or_spaces_is_refused(
    env: dict[str, str], tmp_path: Path, content: str
) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(content.encode())
    env.update(RETAB_API_KEY_FILE=str(key_file))
    message = refusal(env).message
    assert message.startswith(f"the API key from RETAB_API_KEY_FILE ({key_file}) "
                              "contains whitespace")
    assert ENV_KEY not in message


@pytest.mark.parametrize("content", [b"", b"\n"])
def test_empty_key_file_is_refused(env: dict[str, str], tmp_path: Path, content: bytes) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(content)
    env.update(RETAB_API_KEY_FILE=str(key_file))
    assert refusal(env).message == f"the API key from RETAB_API_KEY_FILE ({key_file}) is empty"


def test_key_file_missing_or_unreadable(env: dict[str, str], tmp_path: Path) -> None:
    env.update(RETAB_API_KEY_FILE=str(tmp_path / "nope"))
    assert refusal(env).message == (
        f"cannot read RETAB_API_KEY_FILE {tmp_path / 'nope'}: No such file or directory")
    assert run(env).api_key_source == f"RETAB_API_KEY_FILE ({tmp_path / 'nope'})"
    assert refusal(env).hint == "RETAB_API_KEY_FILE must name a regular file holding only the key"
    binary = tmp_path / "binary"
    binary.write_bytes(b"rt_\xff\xfe_key")  # not UTF-8: refused like any non-ASCII key
    env.update(RETAB_API_KEY_FILE=str(binary))
    assert refusal(env).message == (f"the API key from RETAB_API_KEY_FILE ({binary}) contains "
                                    "whitespace, control or non-ASCII characters; refusing to "
                                    "send it")


def test_env_key_beats_the_key_file(env: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    env.update(RETAB_API_KEY=ENV_KEY, RETAB_API_KEY_FILE=str(key_file))
    assert run(env).api_key == ENV_KEY
    del env["RETAB_API_KEY"]
    assert run(env).api_key == KEY


def test_explicit_profile_beats_the_key_file_with_a_warning(
    env: dict[str, str], tmp_path: Path, warnings: Warnings
) -> None:
    two_profiles(env)
    key_file = tmp_path / "key"
    key_file.write_text(ENV_KEY)
    env.update(RETAB_API_KEY_FILE=str(key_file))
    assert run(env, warnings, profile="default").api_key == KEY
    assert warnings == ["warning: --profile overrides RETAB_API_KEY from the environment"]


def test_key_file_over_4_kib_is_refused_as_too_long(env: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"a" * 4095 + b"\n")
    env.update(RETAB_API_KEY_FILE=str(key_file))
    assert run(env).api_key == "a" * 4095  # 4096 bytes with its newline: still read
    key_file.write_bytes(b"a" * 4097)
    assert refusal(env).message == (f"the API key from RETAB_API_KEY_FILE ({key_file}) is longer "
                                    "than 4096 bytes; refusing to use it")
    assert refusal(env).hint == "RETAB_API_KEY_FILE must name a regular file holding only the key"


@posix_only
def test_key_file_that_is_a_directory_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    env.update(RETAB_API_KEY_FILE=str(tmp_path))
    assert refusal(env).message == (f"cannot read RETAB_API_KEY_FILE {tmp_path}: "
                                    "not a regular file (a directory)")


@posix_only
def test_key_file_through_a_symlink_to_a_regular_file_is_read(env: dict[str, str],
                                                             tmp_path: Path) -> None:
    # Secret mounts (Kubernetes, Docker) hand out keys as symlinks.
    (tmp_path / "real").write_text(ENV_KEY + "\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    env.update(RETAB_API_KEY_FILE=str(tmp_path / "link"))
    assert run(env).api_key == ENV_KEY


NON_ASCII = ["rt_test_\u201dQZQZ", "rt_t\u00e9stQZQZ", "rt_\ufffdQZQZ", "\u0440t_cyrQZQZ"]


@pytest.mark.parametrize("bad", NON_ASCII)
@pytest.mark.parametrize("source", ["--api-key", "RETAB_API_KEY", "RETAB_API_KEY_FILE", "profile"])
def test_non_ascii_keys_are_refused_from_every_source_without_echo(
    env: dict[str, str], tmp_path: Path, bad: str, source: str
) -> None:
    flags: dict[str, Any] = {}
    if source == "--api-key":
        flags["api_key"] = bad
    elif source == "RETAB_API_KEY":
        env.update(RETAB_API_KEY=bad)
    elif source == "RETAB_API_KEY_FILE":
        (tmp_path / "key").write_text(bad + "\n", encoding="utf-8")
        env.update(RETAB_API_KEY_FILE=str(tmp_path / "key"))
    else:
        write_config(env, f'[profiles.default]\napi_key = "{bad}"\n')
    s = run(env, **flags)
    error = refusal(env, **flags)
    assert error.message == (f"the API key from {s.api_key_source} contains whitespace, control "
                             "or non-ASCII characters; refusing to send it")
    assert "QZQZ" not in repr(error)
    if source == "profile":
        assert error.hint == "run 'retab auth login --profile default'"


def test_check_key_accepts_exactly_printable_ascii() -> None:
    printable = "".join(chr(c) for c in range(0x21, 0x7F))
    assert check_key(printable, "x") == printable
    for code in [*range(0x21), 0x7F, 0x80, 0xA0, 0xE9, 0x201D, 0x2028, 0xFEFF]:
        with pytest.raises(AuthError, match=r"^the API key from x (is empty|contains)"):
            check_key(f"rt_{chr(code)}_key", "x")


@pytest.mark.parametrize(("data", "key"), [(b"rt_k\n", "rt_k"), (b"rt_k\r\n", "rt_k"),
                                           (b"rt_k", "rt_k"), (b"rt_k\nsecond line\n", "rt_k")])
def test_read_key_stream_takes_one_line(data: bytes, key: str) -> None:
    assert read_key_stream(io.BytesIO(data)) == key


@pytest.mark.parametrize(("data", "message"), [
    (b"", "the API key from stdin is empty"),
    (b"\n", "the API key from stdin is empty"),
    ("rt_\u201d_key\n".encode(), "the API key from stdin contains whitespace, control or "
                                "non-ASCII characters; refusing to send it"),
    (b"rt_\xff\xfe\n", "the API key from stdin contains whitespace, control or non-ASCII "
                        "characters; refusing to send it"),
    (b"x" * 5000 + b"\n", "the API key from stdin is longer than 4096 bytes; refusing to use it"),
])
def test_read_key_stream_refuses_bad_input_without_echo(data: bytes, message: str) -> None:
    with pytest.raises(AuthError) as caught:
        read_key_stream(io.BytesIO(data))
    assert caught.value.message == message


class Zeros(io.RawIOBase):
    """An endless stream (`retab auth login --with-key < /dev/zero`) that counts what is read."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        buffer[:size] = b"\0" * size
        self.served += size
        return size


def test_read_key_stream_reads_a_few_kib_of_an_endless_stream() -> None:
    zeros = Zeros()
    with pytest.raises(AuthError, match="is longer than 4096 bytes"):
        read_key_stream(io.BufferedReader(zeros, buffer_size=1024))
    assert zeros.served <= 8192


# ---- max rps, debug, output ---------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "value"), [(0.0, 0.0), (2.5, 2.5), (100.0, 100.0)])
def test_max_rps_flag(env: dict[str, str], flag: float, value: float) -> None:
    env.update(RETAB_MAX_RPS="9")
    assert run(env, max_rps=flag).max_rps == value


@pytest.mark.parametrize("flag", [-1.0, -0.001, math.nan, math.inf, -math.inf])
def test_max_rps_flag_refuses_negatives_and_nan(env: dict[str, str], flag: float) -> None:
    with pytest.raises(UsageError) as caught:
        run(env, max_rps=flag)
    assert caught.value.message == "--max-rps must be a number >= 0 (0 = unlimited)"


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("3", 3.0), ("0.5", 0.5)])
def test_max_rps_env(env: dict[str, str], text: str, value: float) -> None:
    env.update(RETAB_MAX_RPS=text)
    assert run(env).max_rps == value


@pytest.mark.parametrize(
    ("text", "message"),
    [("-2", "RETAB_MAX_RPS must be a number >= 0 (0 = unlimited)"),
     ("nan", "RETAB_MAX_RPS must be a number >= 0 (0 = unlimited)"),
     ("inf", "RETAB_MAX_RPS must be a number >= 0 (0 = unlimited)"),
     ("lots", "RETAB_MAX_RPS must be a number (0 = unlimited)")],
)
def test_max_rps_env_refuses_bad_values(env: dict[str, str], text: str, message: str) -> None:
    env.update(RETAB_MAX_RPS=text)
    with pytest.raises(UsageError) as caught:
        run(env)
    assert caught.value.message == message


@pytest.mark.parametrize(("value", "debug"), [("1", True), ("yes", True), ("0", False),
                                              ("false", False), ("", False)])
def test_retab_debug(env: dict[str, str], value: str, debug: bool) -> None:
    env.update(RETAB_DEBUG=value)
    assert run(env).debug is debug


def test_retab_output_is_passed_on(env: dict[str, str]) -> None:
    env.update(RETAB_OUTPUT="jsonl")
    assert run(env).output == "jsonl"


# ---- colour -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "no_color", "force_color", "expected"),
    [
        (None, "", "", "auto"),
        ("auto", "", "", "auto"),
        ("never", "", "", "never"),
        ("always", "", "", "always"),
        (None, "1", "", "never"),
        ("always", "1", "", "never"),
        ("never", "", "1", "never"),
        (None, "", "1", "always"),
        ("auto", "", "1", "always"),
        (None, "1", "1", "never"),
        ("never", "1", "1", "never"),
    ],
)
def test_colour_precedence(env: dict[str, str], flag: str | None, no_color: str, force_color: str,
                           expected: str) -> None:
    env.update(NO_COLOR=no_color, FORCE_COLOR=force_color)
    assert run(env, color=flag).color == expected


# ---- the config file ---------------------------------------------------------------------------


@posix_only
def test_save_profile_writes_0600_in_a_0700_dir_and_round_trips(env: dict[str, str]) -> None:
    path = cfg(env)
    save_profile(path, "default", {"api_key": KEY, "base_url": DEFAULT_BASE_URL})
    save_profile(path, "staging", {"api_key": "rt_test_s", "base_url": STAGING})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_config(path, Warnings()) == {"profiles": {
        "default": {"api_key": KEY, "base_url": DEFAULT_BASE_URL},
        "staging": {"api_key": "rt_test_s", "base_url": STAGING},
    }}
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp file left
    s = run(env, profile="staging")
    assert (s.api_key, s.base_url) == ("rt_test_s", STAGING)


@posix_only
@pytest.mark.parametrize("mode", [0o755, 0o750, 0o705, 0o777])
def test_an_existing_loose_config_dir_is_made_private_when_writing(
    env: dict[str, str], warnings: Warnings, mode: int
) -> None:
    path = cfg(env)
    path.parent.mkdir()
    path.parent.chmod(mode)
    save_profile(path, "default", {"api_key": KEY}, warn=warnings)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert warnings == [f"note: made {path.parent} private (mode {mode:o} -> 700): "
                        "it holds API keys"]
    save_profile(path, "default", {"api_key": KEY}, warn=warnings)
    assert len(warnings) == 1  # once


@posix_only
def test_every_writer_makes_the_config_dir_private(env: dict[str, str]) -> None:
    path = two_profiles(env)
    for write in (lambda: save_profile(path, "x", {"api_key": KEY}),
                  lambda: remove_profile(path, "x"),
                  lambda: switch_profile(path, "staging")):
        path.parent.chmod(0o755)
        write()
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@posix_only
def test_a_shared_sticky_dir_is_not_tightened(env: dict[str, str], warnings: Warnings) -> None:
    path = cfg(env)
    path.parent.mkdir()
    path.parent.chmod(0o1777)  # like /tmp: not ours to lock
    save_profile(path, "default", {"api_key": KEY}, warn=warnings)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o1777
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert warnings == []


@posix_only
@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() != 0, reason="needs chown (root)")
def test_a_dir_owned_by_someone_else_is_not_tightened(env: dict[str, str]) -> None:
    path = cfg(env)
    path.parent.mkdir()
    path.parent.chmod(0o755)
    os.chown(path.parent, 65534, -1)
    save_profile(path, "default", {"api_key": KEY})
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755


def test_save_profile_merges_and_none_removes_a_value(env: dict[str, str]) -> None:
    path = cfg(env)
    save_profile(path, "p", {"api_key": KEY, "base_url": STAGING})
    save_profile(path, "p", {"base_url": None})
    assert load_config(path, Warnings()) == {"profiles": {"p": {"api_key": KEY}}}
    save_profile(path, "p", {"api_key": None})
    assert load_config(path, Warnings()) == {"profiles": {}}


def test_save_profile_keeps_other_tables(env: dict[str, str]) -> None:
    path = write_config(env, '[extra]\nanswer = 42\n[profiles.old]\nbase_url = "https://o.example"\n')
    save_profile(path, "new", {"api_key": KEY})
    assert load_config(path, Warnings()) == {
        "extra": {"answer": 42},
        "profiles": {"old": {"base_url": "https://o.example"}, "new": {"api_key": KEY}},
    }


@posix_only
def test_save_profile_replaces_atomically(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = cfg(env)
    save_profile(path, "default", {"api_key": KEY})
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(UsageError) as caught:
        save_profile(path, "default", {"api_key": "rt_test_new"})
    assert caught.value.message == f"cannot write config file {path}: No space left on device"
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]


@pytest.mark.parametrize("writer", ["save_profile", "remove_profile", "switch_profile"])
def test_a_config_that_cannot_be_written_is_one_usage_error(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    path = two_profiles(env)

    def read_only(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    with pytest.raises(UsageError) as caught:
        _entry_points(path, env)[writer]()
    assert caught.value.message == f"cannot write config file {path}: Permission denied"


def test_remove_profile(env: dict[str, str]) -> None:
    path = two_profiles(env)
    assert remove_profile(path, "staging") is True
    assert load_config(path, Warnings())["profiles"] == {
        "default": {"api_key": KEY, "base_url": DEFAULT_BASE_URL}}
    assert remove_profile(path, "staging") is False
    assert remove_profile(cfg({"RETAB_CONFIG_DIR": str(path.parent / "none")}), "x") is False


def test_missing_config_is_empty(env: dict[str, str], warnings: Warnings) -> None:
    assert load_config(cfg(env), warnings) == {}
    assert warnings == []


def test_corrupt_toml_is_named_with_its_line_never_its_content(env: dict[str, str]) -> None:
    secret = "rt_live_supersecret"
    path = write_config(env, f'[profiles.default]\nbase_url = "https://x"\napi_key = {secret}\n')
    with pytest.raises(UsageError) as caught:
        run(env)
    assert caught.value.message == f"config file {path} is not valid TOML (line 3)"
    assert caught.value.hint == f"fix or remove {path}"
    assert secret not in str(caught.value) and "supersecret" not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_config_that_is_a_directory_is_a_usage_error(env: dict[str, str]) -> None:
    path = cfg(env)
    path.mkdir(parents=True)
    with pytest.raises(UsageError) as caught:
        run(env)
    assert caught.value.message == (f"cannot read config file {path}: "
                                    "not a regular file (a directory)")


SECRET = "rt_live_shapesecret"


@pytest.mark.parametrize(("text", "message"), [
    ("profiles = 1\n", "profiles must be a table, not an integer"),
    (f'profiles = ["{SECRET}"]\n', "profiles must be a table, not an array"),
    ("[profiles]\ndefault = 5\n", "profiles.default must be a table, not an integer"),
    (f'[profiles]\nstaging = "{SECRET}"\n', "profiles.staging must be a table, not a string"),
    ("[profiles.default]\napi_key = 5\n", "profiles.default.api_key must be a string, not an integer"),
    (f'[profiles.default]\napi_key = ["{SECRET}"]\n',
     "profiles.default.api_key must be a string, not an array"),
    ("[profiles.default]\nbase_url = []\n", "profiles.default.base_url must be a string, not an array"),
    ("[profiles.default]\nbase_url = true\n",
     "profiles.default.base_url must be a string, not a boolean"),
    ("[profiles.default]\nbase_url = 1.5\n", "profiles.default.base_url must be a string, not a float"),
    ("[profiles.default]\napi_key = 1979-05-27\n",
     "profiles.default.api_key must be a string, not a date or time"),
    (f'[profiles.default.api_key]\nvalue = "{SECRET}"\n',
     "profiles.default.api_key must be a string, not a table"),
    ("active_profile = 3\n", "active_profile must be a string, not an integer"),
    ('[profiles."we ird.\\u001b[2J"]\napi_key = 7\n',
     'profiles."we ird.\\u001b[2J".api_key must be a string, not an integer'),
])
def test_oddly_shaped_config_is_one_usage_error_naming_the_file_and_key(
    env: dict[str, str], text: str, message: str
) -> None:
    path = write_config(env, text)
    with pytest.raises(UsageError) as caught:
        run(env)
    assert caught.value.message == f"config file {path}: {message}"
    assert caught.value.hint == f"fix or remove {path}"
    assert SECRET not in repr(caught.value) and "\x1b" not in caught.value.message


def _entry_points(path: Path, env: dict[str, str]) -> dict[str, Any]:
    return {
        "resolve": lambda: run(env),
        "resolve --profile": lambda: run(env, profile="default"),
        "resolve creating": lambda: resolve(GlobalOptions(profile="new"), env, creating=True),
        "save_profile": lambda: save_profile(path, "default", {"api_key": KEY}),
        "remove_profile": lambda: remove_profile(path, "default"),
        "list_profiles": lambda: list_profiles(GlobalOptions(), env),
        "switch_profile": lambda: switch_profile(path, "staging"),
    }


@pytest.mark.parametrize("entry", ["resolve", "resolve --profile", "resolve creating",
                                   "save_profile", "remove_profile", "list_profiles",
                                   "switch_profile"])
@pytest.mark.parametrize("text", ["profiles = 1\n", "[profiles]\ndefault = 5\n",
                                  "[profiles.default]\napi_key = 5\n"])
def test_every_reader_of_the_config_refuses_an_odd_shape(env: dict[str, str], entry: str,
                                                         text: str) -> None:
    path = write_config(env, text)
    with pytest.raises(UsageError, match=r"^config file .*: profiles"):
        _entry_points(path, env)[entry]()
    assert path.read_text() == text  # nothing written over it


def test_config_that_is_not_utf8_is_a_usage_error(env: dict[str, str]) -> None:
    path = cfg(env)
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_bytes(b'[profiles.default]\napi_key = "rt_\xff"\n')
    with pytest.raises(UsageError) as caught:
        run(env)
    assert caught.value.message == f"config file {path} is not UTF-8 text"
    assert caught.value.hint == f"fix or remove {path}"


def test_config_over_1_mib_is_refused_unread(env: dict[str, str]) -> None:
    path = write_config(env, "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(UsageError) as caught:
        run(env)
    assert caught.value.message == f"config file {path} is larger than 1 MiB"


def test_config_nested_too_deeply_is_a_usage_error(env: dict[str, str]) -> None:
    path = write_config(env, "x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(UsageError) as caught:
        run(env)
    assert caught.value.message == f"config file {path} is not valid TOML (nested too deeply)"


def test_unknown_keys_in_the_config_are_left_alone(env: dict[str, str]) -> None:
    # Newer versions may add settings; an older tool neither refuses nor drops them.
    path = write_config(env, f'theme = 3\n[profiles.default]\napi_key = "{KEY}"\nregion = 1\n')
    assert run(env).api_key == KEY
    save_profile(path, "default", {"base_url": STAGING})
    assert load_config(path, Warnings()) == {
        "theme": 3, "profiles": {"default": {"api_key": KEY, "region": 1, "base_url": STAGING}}}


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_group_or_other_readable_config_warns(env: dict[str, str], warnings: Warnings,
                                              mode: int) -> None:
    path = two_profiles(env)
    path.chmod(mode)
    assert run(env, warnings).api_key == KEY
    assert warnings == [f"warning: {path} is readable by others; run: chmod 600 {path}"]


@posix_only
def test_private_config_does_not_warn(env: dict[str, str], warnings: Warnings) -> None:
    path = two_profiles(env)
    path.chmod(0o600)
    run(env, warnings)
    assert warnings == []


def test_settings_repr_hides_the_key(env: dict[str, str]) -> None:
    env.update(RETAB_API_KEY=ENV_KEY)
    s = run(env)
    assert ENV_KEY not in repr(s)
    assert repr(s) == (f"Settings(profile='default', base_url='{DEFAULT_BASE_URL}', "
                       "api_key_source='RETAB_API_KEY')")



def test_a_stored_key_follows_its_api_whatever_the_spelling(tmp_path: Path) -> None:
    from retab_cli.urls import api_identity as _same_api

    assert _same_api("https://API.retab.com/v1/") == _same_api("https://api.retab.com")
    assert _same_api("https://api.retab.com") != _same_api("https://api.retab.com.evil")
    assert _same_api("http://127.0.0.1:8000") != _same_api("http://127.0.0.1:8001")


@pytest.mark.parametrize(("value", "on"), [("1", True), ("yes", True), ("TRUE", True),
                                           ("no", False), ("False", False), ("0", False)])
def test_retab_debug_values(tmp_path: Path, value: str, on: bool) -> None:
    settings = resolve(GlobalOptions(), {"RETAB_CONFIG_DIR": str(tmp_path), "RETAB_DEBUG": value})
    assert settings.debug is on
