"""Base-URL rules (docs/design.md §5): https, http only on loopback, no userinfo, query or
fragment, a trailing /v1 trimmed; loopback parsed as an address; the API identity."""

from __future__ import annotations

import pytest

from retab_cli.errors import UsageError
from retab_cli.urls import api_identity, is_loopback, normalize_base_url


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.retab.com", "https://api.retab.com"),
    ("https://api.retab.com/", "https://api.retab.com"),
    ("  https://api.retab.com  ", "https://api.retab.com"),
    ("https://api.retab.com/proxy/", "https://api.retab.com/proxy"),
    ("https://api.retab.com/ProxyX", "https://api.retab.com/ProxyX"),  # only slashes trimmed
    ("https://api.retab.com:8443", "https://api.retab.com:8443"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.5.6.7:1", "http://127.5.6.7:1"),
    ("http://localhost:9", "http://localhost:9"),
    ("http://LocalHost:9", "http://LocalHost:9"),
    ("http://[::1]:9", "http://[::1]:9"),
])
def test_base_urls_accepted_without_a_word(url: str, expected: str) -> None:
    warnings: list[str] = []
    assert normalize_base_url(url, warn=warnings.append) == expected
    assert warnings == []


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://api.retab.com", "invalid base URL 'ftp://api.retab.com': expected https://HOST[:PORT]"),
    ("api.retab.com", "invalid base URL 'api.retab.com': expected https://HOST[:PORT]"),
    ("https://", "invalid base URL 'https://': expected https://HOST[:PORT]"),
    ("https://api.retab.com?x=1", "invalid base URL: a query or fragment is not allowed"),
    ("https://api.retab.com#f", "invalid base URL: a query or fragment is not allowed"),
    ("https://api.retab.com:99999", "invalid base URL 'https://api.retab.com:99999': bad port"),
    ("https://api.retab.com:x", "invalid base URL 'https://api.retab.com:x': bad port"),
])
def test_base_urls_refused(url: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        normalize_base_url(url)
    assert info.value.message == message


@pytest.mark.parametrize("url", [
    "https://user:pw@api.retab.com",
    "https://user@api.retab.com",  # a user and no password
    "https://:pw@api.retab.com",  # a password and no user
    "https://user:@api.retab.com",
    "https://@api.retab.com",  # an empty userinfo is still one
])
def test_every_userinfo_form_is_refused(url: str) -> None:
    with pytest.raises(UsageError) as info:
        normalize_base_url(url)
    assert info.value.message == "invalid base URL: credentials in the URL are not allowed"
    assert "pw" not in info.value.message and "user" not in info.value.message


@pytest.mark.parametrize("url", ["http://api.retab.com", "http://127.0.0.1.evil.com", "http://10.0.0.1",
                                 "http://0.0.0.0:8080", "http://128.0.0.1"])
def test_plain_http_beyond_loopback_is_refused(url: str) -> None:
    with pytest.raises(UsageError) as info:
        normalize_base_url(url)
    host = url.split("//")[1].split(":")[0]
    assert info.value.message == f"refusing plain http:// to {host}: the API key would travel unencrypted"
    assert info.value.hint == "use https://, or set RETAB_ALLOW_INSECURE_HTTP=1 if you must"


def test_insecure_http_allowed_only_when_asked_with_a_warning() -> None:
    warnings: list[str] = []
    assert normalize_base_url("http://api.test/", allow_insecure=True, warn=warnings.append) == \
        "http://api.test"
    assert warnings == ["warning: sending the API key over plain http to api.test"]


def test_https_to_any_host_needs_no_permission() -> None:
    warnings: list[str] = []
    assert normalize_base_url("https://10.0.0.1", warn=warnings.append) == "https://10.0.0.1"
    assert warnings == []


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.retab.com/v1/", "https://api.retab.com"),
    ("https://api.retab.com/v1", "https://api.retab.com"),
    ("https://api.retab.com/proxy/v1", "https://api.retab.com/proxy"),
])
def test_trailing_v1_is_trimmed_with_a_warning(url: str, expected: str) -> None:
    warnings: list[str] = []
    assert normalize_base_url(url, warn=warnings.append) == expected
    assert warnings == ["warning: the base URL should not include /v1; using it without"]


def test_a_path_ending_in_v10_is_kept() -> None:
    assert normalize_base_url("https://api.retab.com/v10") == "https://api.retab.com/v10"


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST", True), ("127.0.0.1", True), ("127.255.255.254", True),
    ("::1", True), ("[::1]", True), ("X::1", False), ("127.0.0.1.evil.com", False),
    ("localhost.evil.com", False),
    ("128.0.0.1", False), ("0.0.0.0", False), ("::2", False), ("", False), ("api.retab.com", False),
])
def test_is_loopback_parses_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("url", "identity"), [
    ("https://API.Retab.com", "https://api.retab.com"),
    ("HTTPS://api.retab.com/", "https://api.retab.com"),
    ("https://api.retab.com/v1/", "https://api.retab.com"),
    ("https://api.retab.com/Proxy/v1", "https://api.retab.com/Proxy"),
    (" http://127.0.0.1:8080 ", "http://127.0.0.1:8080"),
])
def test_api_identity_ignores_case_slash_and_v1(url: str, identity: str) -> None:
    assert api_identity(url) == identity


def test_api_identity_tells_other_servers_apart() -> None:
    assert api_identity("https://api.retab.com") != api_identity("https://api.retab.com:444")
    assert api_identity("https://api.retab.com") != api_identity("http://api.retab.com")
    assert api_identity("https://api.retab.com/a") != api_identity("https://api.retab.com/b")
