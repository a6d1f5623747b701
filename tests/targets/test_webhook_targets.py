"""Subscription URLs, custom headers and addresses: what a webhook may target. No network is used."""

from __future__ import annotations

import ipaddress
import socket
import string
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airy_actors.errors import BadRequest
from airy_actors.integrations.targets import (
    MAX_HEADERS,
    MAX_URL_LENGTH,
    address_problem,
    check_headers,
    check_url,
    mask_url,
    parse_legacy_ipv4,
)


@pytest.fixture(autouse=True)
def no_name_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checking a URL must not resolve its host: resolution happens at each delivery."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("check_url resolved a host name")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# (the URL, what its host is once canonical, a word the refusal must say)
NON_PUBLIC = [
    ("http://127.0.0.1/hook", "127.0.0.1", "loopback"),
    ("http://127.1/hook", "127.0.0.1", "loopback"),
    ("http://2130706433/hook", "127.0.0.1", "loopback"),
    ("http://0x7f000001/hook", "127.0.0.1", "loopback"),
    ("http://0X7F.1/hook", "127.0.0.1", "loopback"),
    ("http://0177.0.0.1/hook", "127.0.0.1", "loopback"),
    ("http://0177.0.0.01:8080/hook", "127.0.0.1", "loopback"),
    ("http://127.0.0.1./hook", "127.0.0.1", "loopback"),
    ("http://%31%32%37.0.0.1/hook", "127.0.0.1", "loopback"),
    ("http://%31%32%37%2e%30%2e%30%2e%31/hook", "127.0.0.1", "loopback"),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook", "127.0.0.1", "loopback"),  # full-width digits
    ("http://127\u30020\u30020\u30021/hook", "127.0.0.1", "loopback"),  # ideographic full stops
    ("http://[::1]/hook", "[::1]", "loopback"),
    ("http://[0:0:0:0:0:0:0:1]/hook", "[::1]", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "[::ffff:7f00:1]", "IPv4-mapped form of 127.0.0.1, a loopback"),
    ("http://[::ffff:7f00:1]/hook", "[::ffff:7f00:1]", "IPv4-mapped form of 127.0.0.1"),
    ("http://[::7f00:1]/hook", "[::7f00:1]", "IPv4-compatible form of 127.0.0.1"),
    ("http://[2002:7f00:1::]/hook", "[2002:7f00:1::]", "6to4 form of 127.0.0.1"),
    ("http://[64:ff9b::7f00:1]/hook", "[64:ff9b::7f00:1]", "NAT64 form of 127.0.0.1"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "[64:ff9b::a9fe:a9fe]", "metadata"),
    ("http://localhost/hook", "localhost", "this host"),
    ("http://localhost./hook", "localhost.", "this host"),
    ("http://LOCALHOST:8080/hook", "localhost", "this host"),
    ("http://api.localhost/hook", "api.localhost", "this host"),
    ("http://api.localhost./hook", "api.localhost.", "this host"),
    ("http://%6c%6f%63%61%6c%68%6f%73%74/hook", "localhost", "this host"),
    ("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/hook", "localhost", "this host"),  # full-width
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal", "local network"),
    ("http://printer.local/hook", "printer.local", "local network"),
    ("http://redis:6379/hook", "redis", "fully qualified"),
    ("http://10.0.0.7/hook", "10.0.0.7", "private"),
    ("http://012.0.0.7/hook", "10.0.0.7", "private"),
    ("http://172.16.3.4/hook", "172.16.3.4", "private"),
    ("http://172.31.255.255/hook", "172.31.255.255", "private"),
    ("http://192.168.1.1/hook", "192.168.1.1", "private"),
    ("http://3232235777/hook", "192.168.1.1", "private"),
    ("http://100.64.0.1/hook", "100.64.0.1", "carrier-grade NAT"),
    ("http://100.100.100.200/hook", "100.100.100.200", "carrier-grade NAT"),  # Alibaba's metadata service
    ("http://[fc00::1]/hook", "[fc00::1]", "private"),
    ("http://[fd00:ec2::254]/hook", "[fd00:ec2::254]", "private"),  # AWS's IPv6 metadata service
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "metadata"),
    ("http://0xa9fea9fe/latest/meta-data/", "169.254.169.254", "metadata"),
    ("http://[::ffff:169.254.169.254]/latest/", "[::ffff:a9fe:a9fe]", "metadata"),
    ("http://169.254.1.1/hook", "169.254.1.1", "link-local"),
    ("http://[fe80::1]/hook", "[fe80::1]", "link-local"),
    ("http://[fe80::1%25eth0]/hook", "[fe80::1%25eth0]", "link-local"),
    ("http://0.0.0.0/hook", "0.0.0.0", "unspecified"),
    ("http://0/hook", "0.0.0.0", "unspecified"),
    ("http://[::]/hook", "[::]", "unspecified"),
    ("http://224.0.0.1/hook", "224.0.0.1", "multicast"),
    ("http://[ff02::1]/hook", "[ff02::1]", "multicast"),
    ("http://240.0.0.1/hook", "240.0.0.1", "reserved"),
    ("http://255.255.255.255/hook", "255.255.255.255", "reserved"),
    ("http://192.0.2.10/hook", "192.0.2.10", "documentation"),
    ("http://198.18.0.1/hook", "198.18.0.1", "benchmarking"),
    ("http://[2001:db8::1]/hook", "[2001:db8::1]", "documentation"),
    ("http://[100::1]/hook", "[100::1]", "reserved"),
]


@pytest.mark.parametrize(("url", "host", "reason"), NON_PUBLIC)
def test_a_non_public_target_is_refused_in_every_spelling(url, host, reason):
    with pytest.raises(BadRequest) as refused:
        check_url(url, allow_private=False)
    assert refused.value.message.startswith("url")
    assert reason in refused.value.message


@pytest.mark.parametrize(("url", "host", "reason"), NON_PUBLIC)
def test_a_non_public_target_is_allowed_when_private_targets_are(url, host, reason):
    checked = check_url(url, allow_private=True)
    # Stored with the host that the delivery will connect to, whatever the spelling.
    assert httpx.URL(checked).raw_host.decode() == host.strip("[]")
    assert urlsplit(checked).path == urlsplit(url).path


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.com/airy?team=7", "https://hooks.example.com/airy?team=7"),
        ("https://example.com", "https://example.com"),
        ("HTTPS://Hooks.Example.COM/Path?Q=1#Frag", "https://hooks.example.com/Path?Q=1#Frag"),
        ("https://example.com./hook", "https://example.com./hook"),
        ("http://93.184.216.34/hook", "http://93.184.216.34/hook"),
        ("http://93.184.216.34:8443/hook", "http://93.184.216.34:8443/hook"),
        ("http://1572395042/hook", "http://93.184.216.34/hook"),  # the same address, spelled as one number
        ("http://[2606:2800:220:1:248:1893:25c8:1946]/hook", "http://[2606:2800:220:1:248:1893:25c8:1946]/hook"),
        ("http://[::ffff:93.184.216.34]/hook", "http://[::ffff:5db8:d822]/hook"),
        ("http://[64:ff9b::93.184.216.34]/hook", "http://[64:ff9b::5db8:d822]/hook"),
        ("https://user:secret@hooks.example.com:8443/x", "https://user:secret@hooks.example.com:8443/x"),
        ("https://b\u00fccher.example/hook", "https://xn--bcher-kva.example/hook"),
        ("https://my_host.example.com/hook", "https://my_host.example.com/hook"),
        ("https://100.63.255.255/hook", "https://100.63.255.255/hook"),  # just below the CGNAT range
        ("https://172.32.0.1/hook", "https://172.32.0.1/hook"),  # just past 172.16/12
    ],
)
def test_a_public_name_or_address_is_accepted(url, expected):
    assert check_url(url, allow_private=False) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.com/x", "http"),
        ("hooks.example.com/x", "http"),
        ("http://", "host"),
        ("http:///x", "host"),
        ("http://:80/x", "host"),
        ("http:hooks.example.com", "http"),
        ("http://hooks.example.com:99999/x", "port"),
        ("http://hooks.example.com:0/x", "port"),
        ("http://hooks.example.com:8o/x", "port"),
        ("http://hooks.example.com/a b", "spaces"),
        ("http://hooks.example.com/\x00", "control"),
        ("http://evil.example\\@127.0.0.1/", "backslash"),
        ("http://127.0.0.1:80\\@evil.example/", "backslash"),
        ("http://1.2.3.4.5/", "IPv4"),
        ("http://08.0.0.1/", "IPv4"),
        ("http://256.0.0.1/", "IPv4"),
        ("http://0x/", "IPv4"),
        ("http://[::1/", "IPv6"),
        ("http://[127.0.0.1]/", "IPv6"),
        ("http://[::1]x/", "IPv6"),
        ("http://exa$mple.com/", "host"),
        ("http://%ff.example.com/", "UTF-8"),
        ("http://" + "a" * 64 + ".example.com/", "63"),
        ("https://example.com/" + "x" * MAX_URL_LENGTH, str(MAX_URL_LENGTH)),
    ],
)
def test_a_malformed_url_is_refused_naming_url(url, says):
    for allow_private in (False, True):
        with pytest.raises(BadRequest) as refused:
            check_url(url, allow_private=allow_private)
        assert refused.value.message.startswith("url") and says in refused.value.message


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0x0.01", "127.0.0.1"),
        ("10.1.0x0102", "10.1.1.2"),
        ("0", "0.0.0.0"),
        ("127.0.0.1.", None),
        ("1.2.3.4.5", None),
        ("0x", None),
        ("0X0Xc", None),
        ("1_0.0.0.1", None),
        ("256.1", None),
        ("4294967296", None),
    ],
)
def test_legacy_ipv4_spellings_read_as_inet_aton_reads_them(text, address):
    expected = None if address is None else ipaddress.IPv4Address(address)
    assert parse_legacy_ipv4(text) == expected


@given(st.text(alphabet=string.hexdigits + "xX.", min_size=1, max_size=24))
def test_legacy_ipv4_parsing_agrees_with_the_platform_inet_aton(text):
    try:
        expected = ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    assert parse_legacy_ipv4(text) == expected


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("2002:808:808::1", None),  # 6to4 of a public address
        ("127.0.0.53", "loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1, a private address"),
        ("::ffff:0:10.0.0.1", "IPv4-translated form of 10.0.0.1"),
        ("::8.8.8.8", "deprecated IPv4-compatible"),
        ("2001::1", "reserved"),  # Teredo
        ("3fff::1", "documentation"),
        ("4000::1", "reserved"),  # outside the global unicast space
    ],
)
def test_an_address_is_public_or_says_what_it_is(address, problem):
    found = address_problem(ipaddress.ip_address(address))
    assert found == problem if problem is None else problem in found


# --- masking -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@hooks.example.com/x?y=1", "https://***:***@hooks.example.com/x?y=1"),
        ("https://user:p%40ss@hooks.example.com:8443/x", "https://***:***@hooks.example.com:8443/x"),
        ("https://token@hooks.example.com/x", "https://***@hooks.example.com/x"),
        ("https://a@b:c@hooks.example.com/", "https://***:***@hooks.example.com/"),
        ("https://hooks.example.com/x?email=a@b.example", "https://hooks.example.com/x?email=a@b.example"),
        ("https://hooks.example.com/@me#x@y", "https://hooks.example.com/@me#x@y"),
        ("https://hooks.example.com", "https://hooks.example.com"),
        ("not a url", "not a url"),
    ],
)
def test_userinfo_is_masked_and_the_rest_shown_unchanged(url, shown):
    assert mask_url(url) == shown


# --- headers -------------------------------------------------------------------------------------------


def test_custom_headers_are_kept_as_given():
    headers = {"Authorization": "Bearer receiver-secret", "X-Team": "seven", "Accept": "*/*"}
    assert check_headers(headers) == headers
    assert check_headers(None) == {}


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "host",
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Upgrade",
        "Expect",
        "X-Airy-Content-Signature",
        "x-airy-delivery-id",
        "X-Airy-Anything",
    ],
)
def test_a_header_of_the_connection_or_of_airy_is_refused_naming_it(name):
    with pytest.raises(BadRequest) as refused:
        check_headers({"X-Team": "seven", name: "value"})
    assert f"headers.{name}" in refused.value.message


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        (["X-Team"], "headers"),
        ({"bad name": "x"}, "headers"),
        ({"X-Team:": "x"}, "headers"),
        ({"": "x"}, "headers"),
        ({"X-Team": 7}, "headers.X-Team"),
        ({"X-Team": "a\r\nInjected: yes"}, "headers.X-Team"),
        ({"X-Team": "caf\u00e9"}, "headers.X-Team"),
        ({"X-Team": " padded"}, "headers.X-Team"),
        ({"X-Team": "x" * 8193}, "headers.X-Team"),
        ({"X-Team": "a", "x-team": "b"}, "headers.x-team"),
        ({f"X-H{number}": "x" for number in range(MAX_HEADERS + 1)}, "headers"),
        ({f"X-H{number}": "x" * 8000 for number in range(3)}, "bytes"),
    ],
)
def test_a_bad_header_is_refused_naming_it(headers, says):
    with pytest.raises(BadRequest) as refused:
        check_headers(headers)
    assert says in refused.value.message
