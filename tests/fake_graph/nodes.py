"""The Graph nodes the fake knows, and how a node answers a ``fields`` parameter."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from .errors import nonexisting_field


@dataclass
class Page:
    id: str
    name: str
    token: str
    picture_url: str


@dataclass
class User:
    """A Facebook user, known by a user access token."""

    id: str
    name: str
    token: str
    page_ids: list[str]


@dataclass
class Contact:
    """A person on Messenger, known by their page-scoped id (PSID)."""

    psid: str
    first_name: str
    last_name: str
    profile_pic: str


@dataclass
class InstagramAccount:
    """An Instagram professional account linked to a Facebook Page."""

    id: str
    page_id: str
    username: str
    profile_picture_url: str | None
    name: str | None


@dataclass
class InstagramContact:
    """A person on Instagram, known by their Instagram-scoped id (IGSID)."""

    igsid: str
    name: str | None
    username: str | None
    profile_pic: str | None
    account_id: str | None
    """The Instagram account the IGSID is scoped to; None: any."""


Node = Page | User | Contact | InstagramAccount | InstagramContact
Caller = Page | User
"""Who a token stands for: a page (page token) or a user (user token)."""

NODE_TYPES: dict[type, str] = {
    Page: "Page",
    User: "User",
    Contact: "User",
    InstagramAccount: "IGUser",
    # The error wording for an IGSID node is undocumented; it is a user, like a PSID.
    InstagramContact: "User",
}
"""The node type names Facebook's ``nonexisting field`` errors use."""


def requested_fields(raw: Any, default: tuple[str, ...]) -> list[str]:
    """The top-level names of a ``fields`` parameter, e.g. ``name,picture.type(large){url}``."""
    items = _top_level_items(raw)
    if not items:
        return list(default)
    return [re.split(r"[.{]", item, maxsplit=1)[0] for item in items]


def expansions(raw: Any) -> dict[str, str]:
    """The nested field lists of a ``fields`` parameter (field expansion): ``a{b,c},d`` gives ``{"a": "b,c"}``."""
    nested: dict[str, str] = {}
    for item in _top_level_items(raw):
        name, brace, rest = item.partition("{")
        if brace and "." not in name and rest.endswith("}"):
            nested[name.strip()] = rest[:-1]
    return nested


def _top_level_items(raw: Any) -> list[str]:
    if not isinstance(raw, str):
        return []
    items: list[str] = []
    depth = 0
    current: list[str] = []
    for char in raw:
        if char in "{(":
            depth += 1
        elif char in "})":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def instagram_account_fields(account: InstagramAccount) -> dict[str, Any]:
    """The fields of an IG User node the fake knows (unset ones are None)."""
    return {
        "id": account.id,
        "username": account.username,
        "name": account.name,
        "profile_picture_url": account.profile_picture_url,
    }


def render(node_type: str, available: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Select ``fields`` of a node; like Facebook, ``id`` is always included.

    A field whose value is None exists on the node but has no value (an unlinked Instagram account,
    an unset name): like Facebook, the answer leaves it out.
    """
    out: dict[str, Any] = {}
    for name in fields:
        if name not in available:
            raise nonexisting_field(name, node_type)
        if available[name] is not None:
            out[name] = available[name]
    out.setdefault("id", available["id"])
    return out


def picture(url: str) -> dict[str, Any]:
    return {"data": {"height": 50, "is_silhouette": False, "url": url, "width": 50}}


def cursor(node_id: str) -> str:
    return base64.urlsafe_b64encode(node_id.encode()).decode().rstrip("=")


def uncursor(value: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
