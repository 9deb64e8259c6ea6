"""Settings: flags > environment > profile in the config file (docs/design.md §5).

An explicit `--profile` beats the environment for the values it defines (with a
warning). A stored key belongs to the base URL it was saved with and is never sent
to another one. Every resolved value remembers where it came from, for
`auth status`. A key that cannot be used (unreadable file, bad characters, another
base URL) is not an error until a command needs it: `Settings.require_key` raises,
so `auth login`, `logout`, `list` and `switch` still work to repair it.
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
from typing import IO, Any

from retab_cli.errors import AuthError, UsageError

DEFAULT_BASE_URL = "https://api.retab.com"
DEFAULT_PROFILE = "default"
NOT_SET = "not set"  # api_key_source when no source holds a key
KEY_LIMIT = 4096  # bytes; a key is about 50, so more is not a key file
CONFIG_LIMIT = 1 << 20  # bytes of config.toml
Log = Callable[[str], None]


def _ignore(_: str) -> None:
    return None


@dataclass
class GlobalOptions:
    """The global flags as given on the command line (None = not given)."""

    profile: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    max_rps: float | None = None
    debug: bool = False
    color: str | None = None
    no_progress: bool = False


@dataclass
class Settings:
    profile: str
    profile_source: str  # --profile, RETAB_PROFILE, "active_profile in PATH" or "default"
    base_url: str
    base_url_source: str
    api_key: str | None = field(repr=False)
    api_key_source: str  # where the key came from, or NOT_SET
    max_rps: float
    debug: bool
    color: str
    output: str | None
    config_path: Path
    key_refused: str | None = None  # why the key from api_key_source is not used
    key_hint: str | None = None

    def __repr__(self) -> str:
        return (f"Settings(profile={self.profile!r}, base_url={self.base_url!r}, "
                f"api_key_source={self.api_key_source!r})")

    def require_key(self) -> str:
        if self.api_key:
            return self.api_key
        if self.key_refused:
            raise AuthError(self.key_refused, hint=self.key_hint)
        raise AuthError("no API key configured",
                        hint="run 'retab auth login', or set RETAB_API_KEY")

    def describe_key(self) -> str:
        """The key as `auth status` shows it: masked with its source, refused, or not set."""
        if self.api_key:
            from retab_cli.client import mask_key  # only status shows a key

            return f"{mask_key(self.api_key)}  (from {self.api_key_source})"
        if self.key_refused:
            return f"refused  (from {self.api_key_source})"
        return NOT_SET

    def status_info(self) -> dict[str, Any]:
        """`auth status`'s object before the key is tried: the key masked, never whole."""
        from retab_cli.client import mask_key

        return {
            "profile": self.profile,
            "profile_source": self.profile_source,
            "base_url": self.base_url,
            "base_url_source": self.base_url_source,
            "api_key": mask_key(self.api_key) if self.api_key else None,
            "api_key_source": self.api_key_source,
            "config_file": str(self.config_path),
            "key_works": False,
            "problem": None,
        }


def config_dir(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("RETAB_CONFIG_DIR"):
        return Path(env["RETAB_CONFIG_DIR"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "retab"


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    return config_dir(env) / "config.toml"


# ---- reading files safely ------------------------------------------------------------------

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device",
          stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}


class NotRegularFile(OSError):
    """Raised like an OSError so callers report it the same way (they show strerror)."""

    def __init__(self, mode: int) -> None:
        kind = _KINDS.get(stat.S_IFMT(mode))
        super().__init__(0, f"not a regular file ({kind})" if kind else "not a regular file")


def read_regular_file(path: str | Path, limit: int, on_open: Callable[[os.stat_result], None]
                      = lambda _: None) -> bytes:
    """At most `limit + 1` bytes of a regular file (one more shows it is too long).

    O_NONBLOCK keeps open() of a FIFO without a writer from hanging, and the type is
    checked on the open descriptor, so /dev/zero or a FIFO is refused before any read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(info.st_mode)
        on_open(info)
        chunks: list[bytes] = []
        wanted = limit + 1
        while wanted > 0 and (chunk := os.read(fd, wanted)):
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# ---- the config file -----------------------------------------------------------------------


def load_config(path: Path, warn: Log) -> dict[str, Any]:
    """Read and check the TOML config; errors name the file and a line or key, never contents."""

    def check_mode(info: os.stat_result) -> None:
        if sys.platform != "win32" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            warn(f"warning: {path} is readable by others; run: chmod 600 {path}")

    try:
        data = read_regular_file(path, CONFIG_LIMIT, check_mode)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    if len(data) > CONFIG_LIMIT:
        raise UsageError(f"config file {path} is larger than {CONFIG_LIMIT >> 20} MiB",
                         hint=f"fix or remove {path}")
    return check_config(_parse_toml(data, path), path)


def _parse_toml(data: bytes, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text",
                         hint=f"fix or remove {path}") from None
    except tomllib.TOMLDecodeError as exc:
        # The message quotes no content, only the position: "... (at line 3, column 5)".
        line = re.search(r"line (\d+)", str(exc))
        where = f" (line {line.group(1)})" if line else ""
        raise UsageError(f"config file {path} is not valid TOML{where}",
                         hint=f"fix or remove {path}") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise UsageError(f"config file {path} is not valid TOML (nested too deeply)",
                         hint=f"fix or remove {path}") from None


_PROFILE_VALUES = ("api_key", "base_url")


def check_config(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """Parsed TOML may hold any type anywhere: check, once, every value this module reads,
    so the rest can rely on the shape (profiles: tables of strings)."""
    _expect(config.get("active_profile"), str, path, ["active_profile"])
    profiles = config.get("profiles", {})
    _expect(profiles, dict, path, ["profiles"])
    for name, table in profiles.items():
        _expect(table, dict, path, ["profiles", name])
        for key in _PROFILE_VALUES:
            _expect(table.get(key), str, path, ["profiles", name, key])
    return config


_TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
               list: "an array", dict: "a table"}  # bool first: it is an int too


def _expect(value: object, kind: type, path: Path, where: list[str]) -> None:
    if value is None or isinstance(value, kind):
        return
    found = next((n for k, n in _TOML_TYPES.items() if isinstance(value, k)), "a date or time")
    raise UsageError(f"config file {path}: {_key_path(where)} must be {_TOML_TYPES[kind]}, "
                     f"not {found}", hint=f"fix or remove {path}")


def _key_path(parts: list[str]) -> str:
    """A TOML key path; odd names quoted with escapes, so no file content reaches a terminal raw."""
    import json  # error paths only: kept off start-up

    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p) for p in parts)


def profile_names(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("profiles", {}))


def unknown_profile(name: str, path: Path, known: list[str]) -> UsageError:
    names = ", ".join(_key_path([n]) for n in known)  # names from the file, quoted when odd
    listed = f"known profiles: {names}" if known else "no profiles are configured"
    return UsageError(f"no profile named {name!r} in {path}",
                      hint=f"{listed}; to create it: {_login_command(name)}")


def _login_command(profile: str) -> str:
    import shlex  # error paths only: kept off start-up

    return f"retab auth login --profile {shlex.quote(profile)}"


# ---- keys ----------------------------------------------------------------------------------

_KEY_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII without the space


def check_key(key: str, source: str) -> str:
    """The one check every key passes, whatever its source; the key is never echoed.

    Only printable ASCII goes into an HTTP header: whitespace, controls and non-ASCII
    (a pasted curly quote) are refused here rather than failing inside the client.
    """
    if not key:
        raise AuthError(f"the API key from {source} is empty")
    if not _KEY_CHARS.fullmatch(key):
        raise AuthError(f"the API key from {source} contains whitespace, control or non-ASCII "
                        "characters; refusing to send it")
    return key


def key_from_bytes(data: bytes, source: str) -> str:
    """A key read from a file or a pipe: bounded, one line end stripped, then checked."""
    if len(data) > KEY_LIMIT:
        raise AuthError(f"the API key from {source} is longer than {KEY_LIMIT} bytes; "
                        "refusing to use it")
    # Invalid UTF-8 becomes U+FFFD, which check_key refuses like any other non-ASCII.
    text = data.decode("utf-8", errors="replace")
    for end in ("\r\n", "\n", "\r"):
        if text.endswith(end):
            text = text[: -len(end)]
            break
    return check_key(text, source)


def read_key_stream(stream: IO[bytes], source: str = "stdin") -> str:
    """One key line from a pipe (`auth login --with-key`), reading at most a few KiB."""
    return key_from_bytes(stream.readline(KEY_LIMIT + 1), source)


def _key_file_source(path: str) -> str:
    return f"RETAB_API_KEY_FILE ({path})"


def read_key_file(path: str) -> str:
    try:
        data = read_regular_file(path, KEY_LIMIT)
    except OSError as exc:
        raise AuthError(f"cannot read RETAB_API_KEY_FILE {path}: {exc.strerror}") from None
    return key_from_bytes(data, _key_file_source(path))


# ---- resolving -----------------------------------------------------------------------------


def choose_profile(opts: GlobalOptions, env: Mapping[str, str], config: Mapping[str, Any],
                   path: Path) -> tuple[str, str]:
    """The profile in use and why: --profile > RETAB_PROFILE > active_profile > default."""
    if opts.profile is not None:
        return opts.profile, "--profile"
    if env.get("RETAB_PROFILE"):
        return env["RETAB_PROFILE"], "RETAB_PROFILE"
    if config.get("active_profile"):
        return str(config["active_profile"]), f"active_profile in {path}"
    return DEFAULT_PROFILE, "default"


@dataclass
class _Key:
    value: str | None
    source: str
    refused: str | None = None
    hint: str | None = None


@dataclass
class _Profile:
    """The profile in use, as the pickers need it."""

    name: str
    stored: Mapping[str, str]
    explicit: bool  # named by --profile: its values beat the environment
    label: str


def resolve(opts: GlobalOptions, env: Mapping[str, str] = os.environ,
            warn: Log = _ignore, *, creating: bool = False) -> Settings:
    """The settings of this invocation.

    creating: for `auth login`, which is about to write the profile: a --profile that
    does not exist yet is accepted, and no key is looked up (login reads its own).
    """
    path = config_path(env)
    config = load_config(path, warn)
    name, profile_source = choose_profile(opts, env, config, path)
    profiles = config.get("profiles", {})
    explicit = profile_source == "--profile"
    if explicit and name not in profiles and not creating:
        raise unknown_profile(name, path, profile_names(config))
    profile = _Profile(name, profiles.get(name, {}), explicit, f"profile {name!r} in {path}")
    base_url, base_source = _pick_base_url(opts.base_url, env, profile, warn)
    key = _Key(None, NOT_SET) if creating else _resolve_key(opts.api_key, env, profile,
                                                             base_url, warn)
    return Settings(
        profile=name,
        profile_source=profile_source,
        base_url=base_url,
        base_url_source=base_source,
        api_key=key.value,
        api_key_source=key.source,
        max_rps=_max_rps(opts.max_rps, env),
        debug=opts.debug or env.get("RETAB_DEBUG", "").strip().lower() in _TRUTHY,
        color=color_choice(opts.color, env),
        output=env.get("RETAB_OUTPUT") or None,
        config_path=path,
        key_refused=key.refused,
        key_hint=key.hint,
    )


_TRUTHY = {"1", "true", "yes", "on"}


def _pick_base_url(flag: str | None, env: Mapping[str, str], profile: _Profile,
                   warn: Log) -> tuple[str, str]:
    from_env = env.get("RETAB_API_BASE_URL")
    from_profile = profile.stored.get("base_url")
    if flag is not None:
        return flag or DEFAULT_BASE_URL, "--base-url"
    if profile.explicit and from_profile:
        if from_env:
            warn(f"warning: --profile {profile.name} overrides RETAB_API_BASE_URL from the "
                 "environment")
        return from_profile, profile.label
    if from_env:
        return from_env, "RETAB_API_BASE_URL"
    if from_profile:
        return from_profile, profile.label
    return DEFAULT_BASE_URL, "default"


def _resolve_key(flag: str | None, env: Mapping[str, str], profile: _Profile, base_url: str,
                 warn: Log) -> _Key:
    try:
        value, source = _pick_key(flag, env, profile, warn)
    except AuthError as exc:  # an unreadable RETAB_API_KEY_FILE
        return _Key(None, _key_file_source(env["RETAB_API_KEY_FILE"]), exc.message, _FILE_HINT)
    if value is None:
        return _Key(None, NOT_SET)
    hint = _key_hint(source, profile)
    if source == profile.label:
        saved_for = profile.stored.get("base_url") or DEFAULT_BASE_URL
        from retab_cli.urls import api_identity  # not on the --help path

        if api_identity(base_url) != api_identity(saved_for):
            return _Key(None, source, f"the key stored in profile {profile.name!r} belongs to "
                        f"{saved_for}; not sending it to {base_url}", f"{hint} for this base URL")
    try:
        return _Key(check_key(value, source), source)
    except AuthError as exc:
        return _Key(None, source, exc.message, hint)


_FILE_HINT = "RETAB_API_KEY_FILE must name a regular file holding only the key"


def _key_hint(source: str, profile: _Profile) -> str | None:
    if source == profile.label:
        return f"run '{_login_command(profile.name)}'"
    if source.startswith("RETAB_API_KEY_FILE"):
        return _FILE_HINT
    return None  # the general hint for a missing key fits


def _pick_key(flag: str | None, env: Mapping[str, str], profile: _Profile,
              warn: Log) -> tuple[str | None, str]:
    if flag is not None:
        warn("warning: --api-key on the command line is visible to other users of this "
             "machine; prefer RETAB_API_KEY or 'retab auth login'")
        return flag, "--api-key"
    from_profile = profile.stored.get("api_key")
    env_key = env.get("RETAB_API_KEY")
    if profile.explicit and from_profile:
        if env_key or env.get("RETAB_API_KEY_FILE"):
            warn("warning: --profile overrides RETAB_API_KEY from the environment")
        return from_profile, profile.label
    if env_key:
        return env_key, "RETAB_API_KEY"
    key_file = env.get("RETAB_API_KEY_FILE")
    if key_file:
        return read_key_file(key_file), _key_file_source(key_file)
    if from_profile:
        return from_profile, profile.label
    return None, NOT_SET


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


def show_progress(no_progress: bool, env: Mapping[str, str]) -> bool:
    """Progress, change lines and live views on stderr: off with --no-progress or
    RETAB_NO_PROGRESS=1 (errors and warnings print regardless)."""
    return not (no_progress or env.get("RETAB_NO_PROGRESS", "").strip().lower() in _TRUTHY)


def color_choice(flag: str | None, env: Mapping[str, str]) -> str:
    """--color never > NO_COLOR > --color always / FORCE_COLOR > auto (docs/design.md §2)."""
    if flag == "never" or env.get("NO_COLOR"):
        return "never"
    if flag == "always" or env.get("FORCE_COLOR"):
        return "always"
    return "auto"


# ---- auth list / switch --------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileEntry:
    name: str
    base_url: str  # the one its key belongs to
    key: str  # masked, "none", or "invalid" (stored but refused by check_key; never shown)
    active: bool


@dataclass(frozen=True)
class ProfileList:
    config_path: Path
    active: str  # may name a profile not in the file (RETAB_PROFILE=new)
    active_source: str  # as Settings.profile_source
    profiles: list[ProfileEntry]

    def as_json(self) -> dict[str, Any]:
        return {"config_file": str(self.config_path), "active": self.active,
                "active_source": self.active_source,
                "profiles": [{"name": p.name, "base_url": p.base_url, "api_key": p.key,
                              "active": p.active} for p in self.profiles]}


def list_profiles(opts: GlobalOptions, env: Mapping[str, str] = os.environ,
                  warn: Log = _ignore) -> ProfileList:
    """Every profile in the config file, which one is in use and why (`auth list`)."""
    path = config_path(env)
    config = load_config(path, warn)
    active, source = choose_profile(opts, env, config, path)
    entries = [ProfileEntry(name, table.get("base_url") or DEFAULT_BASE_URL,
                            _masked(table.get("api_key")), name == active)
               for name, table in config.get("profiles", {}).items()]
    return ProfileList(path, active, source, entries)


def _masked(key: str | None) -> str:
    if not key:
        return "none"
    try:
        check_key(key, "the config file")
    except AuthError:
        return "invalid"
    from retab_cli.client import mask_key

    return mask_key(key)


def switch_profile(path: Path, name: str, warn: Log = _ignore) -> None:
    """Make NAME the active profile (`auth switch`). `default` always works: it is the
    fallback, so switching to it removes active_profile."""
    config = load_config(path, warn)
    if name != DEFAULT_PROFILE and name not in config.get("profiles", {}):
        raise unknown_profile(name, path, profile_names(config))
    wanted = None if name == DEFAULT_PROFILE else name
    if config.get("active_profile") == wanted:
        return
    if wanted is None:
        del config["active_profile"]
    else:
        config["active_profile"] = wanted
    _write_config(path, config, warn)


# ---- writing -------------------------------------------------------------------------------


def save_profile(path: Path, profile: str, values: Mapping[str, str | None],
                 warn: Log = _ignore) -> None:
    """Write one profile's values atomically: 0600 file in a 0700 directory."""
    config = load_config(path, _ignore)
    profiles = config.setdefault("profiles", {})
    table = {k: v for k, v in {**profiles.get(profile, {}), **values}.items() if v is not None}
    if table:
        profiles[profile] = table
    else:
        profiles.pop(profile, None)
    _write_config(path, config, warn)


def remove_profile(path: Path, profile: str, warn: Log = _ignore) -> bool:
    """Remove a profile; when it was the active one, the default is active again."""
    config = load_config(path, _ignore)
    profiles = config.get("profiles", {})
    if profile not in profiles:
        return False
    del profiles[profile]
    if config.get("active_profile") == profile:
        del config["active_profile"]
    _write_config(path, config, warn)
    return True


def _write_config(path: Path, config: Mapping[str, Any], warn: Log) -> None:
    import tomli_w

    _write_private(path, tomli_w.dumps(config).encode(), warn)


def _write_private(path: Path, data: bytes, warn: Log) -> None:
    try:
        _replace_private(path, data, warn)
    except OSError as exc:  # a full disk or a read-only directory: one line, not a traceback
        raise UsageError(f"cannot write config file {path}: {exc.strerror or exc}") from None


def _replace_private(path: Path, data: bytes, warn: Log) -> None:
    import tempfile

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _make_private(path.parent, warn)
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


def _make_private(directory: Path, warn: Log) -> None:
    """A directory that holds keys is 0700. One made earlier with a looser mode is
    tightened, but only when it is ours and not a shared sticky directory like /tmp."""
    if sys.platform == "win32":
        return
    info = directory.stat()
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077 or mode & stat.S_ISVTX or info.st_uid != os.geteuid():
        return
    directory.chmod(0o700)
    warn(f"note: made {directory} private (mode {mode:o} -> 700): it holds API keys")
