"""Page nodes, ``/me/accounts`` with cursor paging, and ``/{page_id}/subscribed_apps``."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlencode

from .core import GraphCore
from .errors import not_one_of, oauth_error, unsupported
from .nodes import (
    Caller,
    Page,
    User,
    cursor,
    expansions,
    instagram_account_fields,
    picture,
    render,
    requested_fields,
    uncursor,
)
from .wire import Call, json_param

DEFAULT_ACCOUNTS_LIMIT = 25

WEBHOOK_FIELDS: frozenset[str] = frozenset(
    {
        "messages",
        "message_echoes",
        "message_deliveries",
        "message_reads",
        "message_reactions",
        "message_edits",
        "messaging_postbacks",
        "messaging_optins",
        "messaging_optouts",
        "messaging_referrals",
        "messaging_handovers",
        "messaging_policy_enforcement",
        "messaging_account_linking",
        "messaging_game_plays",
        "messaging_customer_information",
        "messaging_feedback",
        "standby",
        "inbox_labels",
        "feed",
        "mention",
        "conversations",
        "leadgen",
        "ratings",
        "name",
        "picture",
        "category",
        "description",
        "email",
        "website",
        "live_videos",
        "videos",
    }
)
"""The page webhook fields ``POST /{page_id}/subscribed_apps`` accepts; anything else is error 100."""


class Pages(GraphCore):
    """The page node, the pages a user manages, and our app's webhook subscription per page."""

    def _init_pages_state(self) -> None:
        self._subscriptions: dict[str, list[str]] = {}

    def unsubscribe_app(self, page_id: str) -> None:
        """Simulate Facebook dropping our app's webhook subscription for a page."""
        with self._lock:
            self._subscriptions.pop(page_id, None)

    @property
    def subscriptions(self) -> dict[str, list[str]]:
        """page_id -> the ``subscribed_fields`` of our app."""
        with self._lock:
            return copy.deepcopy(self._subscriptions)

    # --- handlers ---

    def _page_fields(self, page: Page, raw_fields: Any) -> dict[str, Any]:
        return {
            "id": page.id,
            "name": page.name,
            "picture": picture(page.picture_url),
            "category": "Business",
            "instagram_business_account": self._linked_account_field(page, raw_fields),
        }

    def _linked_account_field(self, page: Page, raw_fields: Any) -> dict[str, Any] | None:
        """``{"id"}``, or the fields asked by expansion (``instagram_business_account{username}``);
        None (left out of the answer, as Facebook does) when no Instagram account is linked."""
        account = self._instagram_account_of(page.id)
        if account is None:
            return None
        nested = expansions(raw_fields).get("instagram_business_account")
        return render("IGUser", instagram_account_fields(account), requested_fields(nested, ("id",)))

    def _get_page(self, call: Call, caller: Caller, page: Page) -> dict[str, Any]:
        if not self._may_see_page(caller, page.id):
            raise unsupported(call.method, page.id)
        raw_fields = call.params.get("fields")
        return render("Page", self._page_fields(page, raw_fields), requested_fields(raw_fields, ("name", "id")))

    def _accounts(self, call: Call, caller: Caller, user: User) -> dict[str, Any]:
        pages = [self._pages[page_id] for page_id in user.page_ids if page_id in self._pages]
        limit_param = call.params.get("limit", DEFAULT_ACCOUNTS_LIMIT)
        try:
            limit = int(limit_param)
        except (TypeError, ValueError) as exc:
            raise oauth_error(f'(#100) Param limit must be an integer - got "{limit_param}"') from exc
        limit = max(limit, 1)
        positions = {page.id: index for index, page in enumerate(pages)}

        def position(name: str) -> int:
            page_id = uncursor(str(call.params[name]))
            if page_id not in positions:
                raise oauth_error(f"(#100) The {name} cursor is invalid")
            return positions[page_id]

        if call.params.get("after"):
            start = position("after") + 1
            end = start + limit
        elif call.params.get("before"):
            end = position("before")
            start = max(end - limit, 0)
        else:
            start, end = 0, limit
        chunk = pages[start:end]
        if not chunk:
            return {"data": []}
        raw_fields = call.params.get("fields")
        fields = requested_fields(raw_fields, ("access_token", "category", "category_list", "name", "id", "tasks"))
        data = []
        for page in chunk:
            available = {
                **self._page_fields(page, raw_fields),
                "access_token": page.token,
                "category_list": [{"id": "2500", "name": "Business"}],
                "tasks": ["MANAGE", "MESSAGING"],
            }
            data.append(render("Page", available, fields))
        before, after = cursor(chunk[0].id), cursor(chunk[-1].id)
        paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
        base = {key: value for key, value in call.query.items() if key not in ("after", "before")}
        link = f"{call.origin}/{call.version}/{user.id}/accounts?"
        if start > 0:
            paging["previous"] = link + urlencode({**base, "before": before})
        if start + len(chunk) < len(pages):
            paging["next"] = link + urlencode({**base, "after": after})
        return {"data": data, "paging": paging}

    def _subscribed_apps(self, call: Call, caller: Caller, page: Page) -> dict[str, Any]:
        self._require_page_token(call, caller, page)
        if call.method == "GET":
            fields = self._subscriptions.get(page.id)
            if fields is None:
                return {"data": []}
            return {"data": [{"id": self.app_id, "name": self.app_name, "subscribed_fields": list(fields)}]}
        if call.method == "DELETE":
            self._subscriptions.pop(page.id, None)
            return {"success": True}
        raw = call.params.get("subscribed_fields")
        if isinstance(raw, str) and raw.startswith("["):
            raw = json_param(call.params, "subscribed_fields")
        if isinstance(raw, str):
            requested = [name.strip() for name in raw.split(",") if name.strip()]
        elif isinstance(raw, list):
            requested = [str(name) for name in raw]
        else:
            requested = []
        if not requested:
            raise oauth_error("(#100) The parameter subscribed_fields is required.")
        for index, name in enumerate(requested):
            if name not in WEBHOOK_FIELDS:
                raise not_one_of(f"subscribed_fields[{index}]", sorted(WEBHOOK_FIELDS), name)
        self._subscriptions[page.id] = list(dict.fromkeys(requested))
        return {"success": True}
