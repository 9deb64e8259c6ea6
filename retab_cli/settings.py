"""Settings: flags > environment > profile in the config file (DESIGN §5).

An explicit `--profile` beats the environment for the values it defines (with a
warning). A stored key belongs to the base URL it was saved with and is never sent
to another one. Every resolved value remembers where it came from, for
`auth status`.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retab_cli.errors import AuthError, UsageError

DEFAULT_BASE_URL = "https://api.retab.com"
DEFAULT_PROFILE = "default"
Log = Callable[[str], None]


@dataclass
class GlobalOptions:
    """The global flags as given on the command line (None = not given)."""

    profile: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    max_rps: float | None = None
    debug: bool = False
    color: str | None = None


@dataclass
class Settings:
    profile: str
    base_url: str
    base_url_source: str
    api_key: str | None = field(repr=False)
    api_key_source: str
    max_rps: float
    debug: bool
    color: str
    output: str | None
    config_path: Path
    key_refused: str | None = None  # why a stored key was not used

    def __repr__(self) -> str:
        return (f"Settings(profile={self.profile!r}, base_url={self.base_url!r}, "
                f"api_key_source={self.api_key_source!r})")

    def require_key(self) -> str:
        if self.api_key:
            return self.api_key
        if self.key_refused:
            raise AuthError(self.key_refused, hint=f"run 'retab auth login --profile "
                                                  f"{self.profile}' for this base URL")
        raise AuthError("no API key configured",
                        hint="run 'retab auth login', or set RETAB_API_KEY")


def config_dir(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("RETAB_CONFIG_DIR"):
        return Path(env["RETAB_CONFIG_DIR"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "retab"


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    return config_dir(env) / "config.toml"


def load_config(path: Path, warn: Log) -> dict[str, Any]:
    """Read the TOML config; a corrupt file is named with its line, never its contents."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    if sys.platform != "win32" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"warning: {path} is readable by others; run: chmod 600 {path}")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        # The message quotes no content, only the position: "... (at line 3, column 5)".
        line = re.search(r"line (\d+)", str(exc))
        where = f" (line {line.group(1)})" if line else ""
        raise UsageError(f"config file {path} is not valid TOML{where}",
                         hint=f"fix or remove {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    return data


def profile_table(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    profiles = config.get("profiles", {})
    table = profiles.get(name, {}) if isinstance(profiles, dict) else {}
    return table if isinstance(table, dict) else {}


def check_key(key: str, source: str) -> str:
    """Refuse keys with whitespace or control characters, without echoing them."""
    if not key:
        raise AuthError(f"the API key from {source} is empty")
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise AuthError(f"the API key from {source} contains whitespace or control "
                        "characters; refusing to send it")
    return key


def resolve(opts: GlobalOptions, env: Mapping[str, str] = os.environ,
            warn: Log = lambda _: None) -> Settings:
    path = config_path(env)
    config = load_config(path, warn)
    profile_explicit = opts.profile is not None
    profile = opts.profile or env.get("RETAB_PROFILE") or DEFAULT_PROFILE
    stored = profile_table(config, profile)
    if profile_explicit and opts.profile not in config.get("profiles", {}):
        raise UsageError(f"no profile named {profile!r} in {path}",
                         hint=f"run 'retab auth login --profile {profile}'")
    profile_label = f"profile {profile!r} in {path}"

    def pick(flag: str | None, env_name: str, key: str) -> tuple[str | None, str]:
        from_env = env.get(env_name)
        from_profile = stored.get(key)
        if flag is not None:
            return flag, "--" + key.replace("_", "-")
        if profile_explicit and isinstance(from_profile, str):
            if from_env:
                warn(f"warning: --profile {profile} overrides {env_name} from the environment")
            return from_profile, profile_label
        if from_env:
            return from_env, env_name
        if isinstance(from_profile, str):
            return from_profile, profile_label
        return None, "default"

    base_url, base_source = pick(opts.base_url, "RETAB_API_BASE_URL", "base_url")
    api_key, key_source = _pick_key(opts.api_key, env, stored, profile_explicit, profile_label,
                                    warn)
    key_refused = None
    if key_source == profile_label:
        saved_for = stored.get("base_url") or DEFAULT_BASE_URL
        from retab_cli.urls import api_identity  # not on the --help path

        if api_identity(base_url or DEFAULT_BASE_URL) != api_identity(str(saved_for)):
            key_refused = (f"the key stored in profile {profile!r} belongs to {saved_for}; "
                           f"not sending it to {base_url}")
            api_key, key_source = None, "none"
    if api_key is not None:
        api_key = check_key(api_key, key_source)
    return Settings(
        profile=profile,
        base_url=base_url or DEFAULT_BASE_URL,
        base_url_source=base_source,
        api_key=api_key,
        api_key_source=key_source if api_key else "none",
        max_rps=_max_rps(opts.max_rps, env),
        debug=opts.debug or env.get("RETAB_DEBUG", "").strip().lower() in _TRUTHY,
        color=color_choice(opts.color, env),
        output=env.get("RETAB_OUTPUT") or None,
        config_path=path,
        key_refused=key_refused,
    )


_TRUTHY = {"1", "true", "yes", "on"}


def _pick_key(flag: str | None, env: Mapping[str, str], stored: Mapping[str, Any],
              profile_explicit: bool, profile_label: str, warn: Log) -> tuple[str | None, str]:
    if flag is not None:
        warn("warning: --api-key on the command line is visible to other users of this "
             "machine; prefer RETAB_API_KEY or 'retab auth login'")
        return flag, "--api-key"
    from_profile = stored.get("api_key")
    env_key = env.get("RETAB_API_KEY")
    if profile_explicit and isinstance(from_profile, str):
        if env_key or env.get("RETAB_API_KEY_FILE"):
            warn("warning: --profile overrides RETAB_API_KEY from the environment")
        return from_profile, profile_label
    if env_key:
        return env_key, "RETAB_API_KEY"
    key_file = env.get("RETAB_API_KEY_FILE")
    if key_file:
        return read_key_file(key_file), f"RETAB_API_KEY_FILE ({key_file})"
    if isinstance(from_profile, str):
        return from_profile, profile_label
    return None, "none"


def read_key_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise AuthError(f"cannot read RETAB_API_KEY_FILE {path}: {reason}") from None
    return text[:-1] if text.endswith("\n") else text


def _max_rps(flag: float | None, env: Mapping[str, str]) -> float:
    if flag is not None:
        value: float = flag
    elif env.get("RETAB_MAX_RPS"):
        try:
            value = float(env["RETAB_MAX_RPS"])
        except ValueError:
            raise UsageError("RETAB_MAX_RPS must be a number (0 = unlimited)") from None
    else:
        from retab_cli.budget import DEFAULT_RATE  # the budget's own default, set once

        return DEFAULT_RATE
    if not value >= 0 or value == float("inf"):
        name = "--max-rps" if flag is not None else "RETAB_MAX_RPS"
        raise UsageError(f"{name} must be a number >= 0 (0 = unlimited)")
    return value


def color_choice(flag: str | None, env: Mapping[str, str]) -> str:
    """--color never > NO_COLOR > --color always / FORCE_COLOR > auto (DESIGN §2)."""
    if flag == "never" or env.get("NO_COLOR"):
        return "never"
    if flag == "always" or env.get("FORCE_COLOR"):
        return "always"
    return "auto"


def save_profile(path: Path, profile: str, values: Mapping[str, str | None]) -> None:
    """Write one profile's values atomically: 0600 file in a 0700 directory."""
    import tomli_w

    config = load_config(path, lambda _: None)
    profiles = config.setdefault("profiles", {})
    table = {k: v for k, v in {**profiles.get(profile, {}), **values}.items() if v is not None}
    if table:
        profiles[profile] = table
    else:
        profiles.pop(profile, None)
    _write_private(path, tomli_w.dumps(config).encode())


def remove_profile(path: Path, profile: str) -> bool:
    import tomli_w

    config = load_config(path, lambda _: None)
    profiles = config.get("profiles", {})
    if profile not in profiles:
        return False
    del profiles[profile]
    _write_private(path, tomli_w.dumps(config).encode())
    return True


def _write_private(path: Path, data: bytes) -> None:
    import tempfile

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp already gives 0600 on POSIX; be explicit
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
