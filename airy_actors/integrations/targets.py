"""Where integrator webhooks may be sent: the rules for subscription URLs, custom headers and addresses.

A webhook makes this service send requests wherever an integrator asks, so the target is checked twice:

1. At subscription, :func:`check_url` refuses any URL whose host is, or spells, an address that is not public —
   loopback, private, link-local (the cloud metadata address), unspecified, multicast or reserved — in every form
   a client or a resolver accepts (``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
   ``[::ffff:127.0.0.1]``, ``localhost.``, percent-encoded or full-width hosts). The stored URL carries the host
   in canonical form, so that what is delivered to is what was checked.
2. At each delivery, the transport of ``airy_actors.integrations.transport`` resolves the host itself and applies
   :func:`address_problem` to every address it resolved to, so that a name re-pointed at ``127.0.0.1`` after the
   subscription is refused too.

``allow_private`` (``AIRY_WEBHOOKS_ALLOW_PRIVATE``) lets a receiver on the same host or network through.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import idna

from airy_actors.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
MAX_HEADERS = 32
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
# A receiver refuses larger header blocks (431), as this service's own server does past 16 KiB.
MAX_HEADERS_BYTES = 16 * 1024

# Set by airy-actors on every delivery, or by the HTTP client for the connection: never by an integrator.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
RESERVED_HEADER_PREFIXES = ("proxy-", "x-airy-")  # x-airy-: the signature and delivery id headers

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_DIGITS = {8: set("01234567"), 10: set("0123456789"), 16: set("0123456789abcdefABCDEF")}
_NUMERIC_LABEL = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")

# Names that resolve to this host or its network by definition (RFC 6761, 6762, 8375; ICANN's private-use TLD),
# and the loopback aliases of common hosts files.
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain")

_LOOPBACK = "a loopback address"
_PRIVATE = "a private address"
_LINK_LOCAL = "a link-local address"
_UNSPECIFIED = "an unspecified address"
_RESERVED = "a reserved address"
_DOCUMENTATION = "a documentation address (reserved)"

_IPV4_RULES: list[tuple[ipaddress.IPv4Network, str]] = [
    (ipaddress.IPv4Network(network), reason)
    for network, reason in (
        ("0.0.0.0/8", _UNSPECIFIED),
        ("10.0.0.0/8", _PRIVATE),
        ("100.64.0.0/10", "a shared address (carrier-grade NAT, private)"),
        ("127.0.0.0/8", _LOOPBACK),
        ("169.254.169.254/32", "the cloud metadata address (link-local)"),
        ("169.254.0.0/16", _LINK_LOCAL),
        ("172.16.0.0/12", _PRIVATE),
        ("192.0.0.0/24", "an IETF protocol address (reserved)"),
        ("192.0.2.0/24", _DOCUMENTATION),
        ("192.88.99.0/24", "a 6to4 relay address (reserved)"),
        ("192.168.0.0/16", _PRIVATE),
        ("198.18.0.0/15", "a benchmarking address (reserved)"),
        ("198.51.100.0/24", _DOCUMENTATION),
        ("203.0.113.0/24", _DOCUMENTATION),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", _RESERVED),
    )
]

_IPV6_RULES: list[tuple[ipaddress.IPv6Network, str]] = [
    (ipaddress.IPv6Network(network), reason)
    for network, reason in (
        ("::/128", _UNSPECIFIED),
        ("::1/128", _LOOPBACK),
        ("64:ff9b:1::/48", "a local-use NAT64 address (private)"),
        ("100::/64", "a discard-only address (reserved)"),
        ("2001::/23", "an IETF protocol address (reserved)"),
        ("2001:db8::/32", _DOCUMENTATION),
        ("3fff::/20", _DOCUMENTATION),
        ("5f00::/16", "a segment routing address (reserved)"),
        ("fc00::/7", "a unique local address (private)"),
        ("fe80::/10", _LINK_LOCAL),
        ("fec0::/10", "a site-local address (private)"),
        ("ff00::/8", "a multicast address"),
    )
]
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


# --- addresses -------------------------------------------------------------------------------------------


def address_problem(address: IPAddress) -> str | None:
    """Why webhooks may not go to ``address``; None when it is a public address.

    An IPv6 address that carries an IPv4 address (IPv4-mapped, 6to4, NAT64) is judged by the address it carries.

    Returns:
      A phrase such as ``"a loopback address"``, or
      ``"an IPv4-mapped form of 127.0.0.1, a loopback address"``.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return next((reason for network, reason in _IPV4_RULES if address in network), None)
    for network, reason in _IPV6_RULES:
        if address in network:
            return reason
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        form, ipv4 = embedded
        problem = address_problem(ipv4)
        return f"{form} of {ipv4}, {problem}" if problem else None
    if address in _IPV4_COMPATIBLE or address in _IPV4_TRANSLATED:
        return "a deprecated IPv4-compatible address (reserved)"
    if address not in _GLOBAL_UNICAST:
        return _RESERVED
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped form", address.ipv4_mapped
    if address.sixtofour is not None:
        return "a 6to4 form", address.sixtofour
    low = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _NAT64:
        return "a NAT64 form", low
    if address in _IPV4_COMPATIBLE and address_problem(low):
        return "an IPv4-compatible form", low
    if address in _IPV4_TRANSLATED and address_problem(low):
        return "an IPv4-translated form", low
    return None


def parse_legacy_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """Reads an IPv4 address the way ``inet_aton(3)`` does; None when it is not one.

    Besides ``a.b.c.d``, resolvers and HTTP clients accept one to three parts (``127.1``, ``2130706433``), the
    last filling the remaining bytes, and each part in octal (``0177``) or hexadecimal (``0x7f``).
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            digits, base = part[2:], 16
        elif part.startswith("0") and len(part) > 1:
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        if not digits or not set(digits) <= _DIGITS[base]:  # int() would also take "0x", "_" and blanks
            return None
        values.append(int(digits, base))
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for position, value in enumerate(leading):
        number |= value << (8 * (3 - position))
    return ipaddress.IPv4Address(number)


# --- URLs ----------------------------------------------------------------------------------------------


def check_url(url: str, *, allow_private: bool) -> str:
    """Checks a subscription URL and returns it as it is to be stored.

    The URL must be ``http`` or ``https`` with a host name or a public address. Unless ``allow_private``, hosts
    that are or spell a non-public address (see :func:`address_problem`), ``localhost`` and its kin, and
    single-label names (which resolve through search domains to internal hosts) are refused. Host names are
    not resolved here: the delivery checks what they resolve to.

    Parameters:
      allow_private: let loopback, private and link-local targets through (``AIRY_WEBHOOKS_ALLOW_PRIVATE``).

    Returns:
      The URL with its scheme in lower case and its host in canonical form (lower-case ASCII with IDNA A-labels,
      a dotted-quad IPv4 address, or a compressed IPv6 address in brackets); the rest as given.

    Raises:
      BadRequest: naming ``url`` and what is wrong with it.
    """
    if not isinstance(url, str):
        raise BadRequest("url must be a string")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"url must be at most {MAX_URL_LENGTH} characters")
    if any(ord(char) < 33 or ord(char) == 127 for char in url):
        raise BadRequest("url must not contain spaces or control characters")
    if "\\" in url:  # clients disagree on what a backslash ends
        raise BadRequest("url must not contain backslashes")
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        raise BadRequest("url must be an http:// or https:// URL with a host")
    end = min((index for index in (rest.find(char) for char in "/?#") if index >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, host_port = authority.rpartition("@")
    written, port = _split_port(host_port)
    if not written:
        raise BadRequest("url must be an http:// or https:// URL with a host")
    host, address = _canonical_host(written)
    if not allow_private:
        _refuse_non_public(written, host, address)
    netloc = f"{userinfo}{at}{host}" + (f":{port}" if port else "")
    checked = f"{scheme.lower()}://{netloc}{tail}"
    _agree_with_parsers(checked, host)
    return checked


def mask_url(url: str) -> str:
    """``url`` as it may be shown: any ``user:password@`` becomes ``***:***@``, the rest is unchanged."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    end = min((index for index in (rest.find(char) for char in "/?#") if index >= 0), default=len(rest))
    userinfo, at, host_port = rest[:end].rpartition("@")
    if not at:
        return url
    masked = "***:***" if ":" in userinfo else "***"
    return f"{scheme}://{masked}@{host_port}{rest[end:]}"


def _split_port(host_port: str) -> tuple[str, str]:
    if host_port.startswith("["):
        host, bracket, after = host_port.partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise BadRequest("url has a malformed IPv6 host")
        host, port = host + "]", after[1:]
    else:
        host, _, port = host_port.partition(":")
    if port and (not port.isascii() or not port.isdigit() or not 0 < int(port) <= 65535):
        raise BadRequest("url has an invalid port; it must be a number from 1 to 65535")
    return host, port.lstrip("0") if port else ""


def _canonical_host(written: str) -> tuple[str, IPAddress | None]:
    """The host as it will be connected to, and the address it spells (None for a name)."""
    if written.startswith("["):
        try:
            address = ipaddress.IPv6Address(unquote(written[1:-1], errors="strict"))
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(f"url: {written} is not a valid IPv6 address") from None
        text = str(address).replace("%", "%25")
        return f"[{text}]", address
    try:
        decoded = unquote(written, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("url: the host is not valid percent-encoded UTF-8") from None
    if decoded.isascii():
        name = decoded.lower()
    else:
        try:
            name = idna.encode(decoded, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise BadRequest(f"url: the host {written!r} is not a valid international domain name") from None
    if not _HOST_NAME.match(name) or len(name.rstrip(".")) > 253:
        raise BadRequest(f"url: the host {written!r} is not a valid host name or address")
    labels = name.rstrip(".").split(".")
    if _NUMERIC_LABEL.match(labels[-1]):  # a name ending in a number is an IPv4 address, or nothing
        address4 = parse_legacy_ipv4(name.rstrip("."))
        if address4 is None:
            raise BadRequest(f"url: the host {written!r} is not a valid IPv4 address")
        return str(address4), address4
    if any(len(label) > 63 for label in labels):
        raise BadRequest(f"url: the host {written!r} has a label longer than 63 characters")
    return name, None


def _refuse_non_public(written: str, host: str, address: IPAddress | None) -> None:
    suffix = "; webhooks are only sent to public hosts"
    if address is not None:
        problem = address_problem(address)
        if problem:
            spelled = "" if written.strip("[]") == str(address) else f" ({address})"
            raise BadRequest(f"url: the host {written}{spelled} is {problem}{suffix}")
        return
    name = host.rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES):
        raise BadRequest(f"url: the host {written!r} names this host or its local network{suffix}")
    if "." not in name:
        raise BadRequest(f"url: the host {written!r} is not a fully qualified domain name{suffix}")


def _agree_with_parsers(url: str, host: str) -> None:
    """Refuses a URL that httpx (which delivers) or urllib would read with another host than the one checked."""
    expected = host.strip("[]").lower()
    try:
        by_httpx = httpx.URL(url).raw_host.decode("ascii").lower()
        by_urllib = (urlsplit(url).hostname or "").lower()
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise BadRequest("url is not a valid URL") from None
    if expected not in (by_httpx, by_httpx.replace("%25", "%")) or by_urllib not in (expected, unquote(expected)):
        raise BadRequest("url is ambiguous: its host reads differently to different clients")


# --- headers -------------------------------------------------------------------------------------------


def check_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Checks the custom headers of a subscription, sent with every delivery.

    Names must be HTTP tokens, values printable ASCII without surrounding blanks; at most ``MAX_HEADERS`` of
    them, ``MAX_HEADERS_BYTES`` in all. Headers of the connection (``Host``, ``Content-Length``,
    ``Transfer-Encoding``, ``Connection`` and the other hop-by-hop ones, ``Proxy-*``) and those airy-actors
    sets (``Content-Type``, ``X-Airy-*``) are refused.

    Raises:
      BadRequest: naming ``headers`` or the header that is wrong.
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise BadRequest("headers must be an object of header names and values")
    if len(headers) > MAX_HEADERS:
        raise BadRequest(f"headers must have at most {MAX_HEADERS} entries")
    seen: dict[str, str] = {}
    size = 0
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name) or len(name) > MAX_HEADER_NAME_LENGTH:
            raise BadRequest(f"headers: {name!r} is not a valid header name")
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith(RESERVED_HEADER_PREFIXES):
            raise BadRequest(f"headers.{name} is set by airy-actors or the connection and cannot be set")
        if lower in seen:
            raise BadRequest(f"headers.{name} repeats headers.{seen[lower]}")
        seen[lower] = name
        if not isinstance(value, str):
            raise BadRequest(f"headers.{name} must be a string")
        if not value.isascii() or any((ord(char) < 32 and char != "\t") or ord(char) == 127 for char in value):
            raise BadRequest(f"headers.{name} must be printable ASCII, without control characters")
        if value != value.strip(" \t"):
            raise BadRequest(f"headers.{name} must not begin or end with blanks")
        if len(value) > MAX_HEADER_VALUE_LENGTH:
            raise BadRequest(f"headers.{name} must be at most {MAX_HEADER_VALUE_LENGTH} characters")
        size += len(name) + len(value) + 4  # ": " and CRLF
    if size > MAX_HEADERS_BYTES:
        raise BadRequest(f"headers must be at most {MAX_HEADERS_BYTES} bytes in all")
    return dict(headers)
