"""The handover protocol: which app controls a conversation, and passing, taking or requesting it.

Endpoints (page token; also reachable as ``/me/...``):

- ``POST /{page_id}/pass_thread_control`` ``{recipient: {id}, target_app_id, metadata?}``
- ``POST /{page_id}/take_thread_control`` ``{recipient: {id}, metadata?}``
- ``POST /{page_id}/request_thread_control`` ``{recipient: {id}, metadata?}``
- ``GET /{page_id}/thread_owner?recipient=ID``

The POSTs answer ``{"success": true}`` as the Graph API reference of each edge says (the newer
"Conversation Control" guide shows a ``thread_owner`` object instead; the reference is followed).
Every thread starts idle. Our app (``FakeGraph.app_id``) is the page's Primary Receiver unless a test
says otherwise with ``set_handover_role``. The rules follow Meta's Handover Protocol pages: any
receiver may take an idle thread, the Primary Receiver may take any thread, the owner (or anyone,
while idle) may pass it, and while another app owns a thread the Send API refuses our messages.
"""

from __future__ import annotations

import copy
from typing import Any

from .core import PAGE_INBOX_APP_ID, GraphCore
from .errors import (
    NOT_A_RECEIVER,
    NOT_THREAD_OWNER,
    SECONDARY_RECEIVER_HIDDEN,
    THREAD_CONTROLLED_BY_ANOTHER_APP,
    fresh,
    missing_parameter,
    oauth_error,
)
from .nodes import Caller, Page
from .wire import Call, json_param

HANDOVER_ROLES = ("primary", "secondary")


class Handover(GraphCore):
    """Thread owners per (page, person) and our app's handover role per page."""

    def _init_handover_state(self) -> None:
        self._thread_owners: dict[tuple[str, str], str] = {}
        self._handover_roles: dict[str, tuple[str | None, str]] = {}
        """page_id -> (our role, the Primary Receiver's app id); absent means we are primary."""
        self._handover_calls: list[dict[str, Any]] = []

    # --- scenario set-up ---

    def set_handover_role(self, page_id: str, role: str | None, *, primary_app_id: str = PAGE_INBOX_APP_ID) -> None:
        """Set our app's handover role on a page.

        Parameters:
          role: ``"primary"`` (the default for every page), ``"secondary"`` (then ``primary_app_id``,
            by default the Page Inbox, is the Primary Receiver) or None (neither: every handover call
            fails with ``NOT_A_RECEIVER``).
        """
        if role is not None and role not in HANDOVER_ROLES:
            raise ValueError(f"role must be one of {HANDOVER_ROLES} or None")
        with self._lock:
            self._handover_roles[page_id] = (role, self.app_id if role == "primary" else primary_app_id)

    def set_thread_owner(self, page_id: str, user_id: str, app_id: str | None) -> None:
        """Give the conversation of ``user_id`` (a PSID or IGSID) on a page to ``app_id``; None makes it idle."""
        with self._lock:
            if app_id is None:
                self._thread_owners.pop((page_id, user_id), None)
            else:
                self._thread_owners[(page_id, user_id)] = str(app_id)

    # --- recordings ---

    def thread_owner(self, page_id: str, user_id: str) -> str | None:
        """The app id controlling the conversation of ``user_id`` on a page, or None while it is idle."""
        with self._lock:
            return self._thread_owners.get((page_id, user_id))

    @property
    def handover_calls(self) -> list[dict[str, Any]]:
        """Every accepted handover call: its body plus ``action`` (the edge, e.g. ``pass_thread_control``)
        and ``page_id``. Refused calls are only in ``requests``."""
        with self._lock:
            return copy.deepcopy(self._handover_calls)

    # --- handlers ---

    def _pass_thread_control(self, call: Call, caller: Caller, page: Page) -> dict[str, Any]:
        page = self._require_page_token(call, caller, page)
        role, primary_app_id = self._receiver_role(page.id)
        user_id = self._handover_recipient(call)
        if self._thread_owners.get((page.id, user_id), self.app_id) != self.app_id:
            raise fresh(NOT_THREAD_OWNER)
        target = call.params.get("target_app_id")
        if target in (None, ""):
            # "Required if the Primary Receiver is passing thread control. If the Secondary Receiver is
            # passing thread control, defaults to the app ID of the Primary Receiver."
            if role == "primary":
                raise missing_parameter("target_app_id")
            target = primary_app_id
        self._thread_owners[(page.id, user_id)] = str(target)
        return self._record_handover(call, page)

    def _take_thread_control(self, call: Call, caller: Caller, page: Page) -> dict[str, Any]:
        page = self._require_page_token(call, caller, page)
        role, _ = self._receiver_role(page.id)
        user_id = self._handover_recipient(call)
        owner = self._thread_owners.get((page.id, user_id))
        if owner not in (None, self.app_id) and role != "primary":
            # Undocumented: a Secondary Receiver taking a thread another app owns. The closest documented
            # refusal is the one for an action by an app that is not the thread owner.
            raise fresh(NOT_THREAD_OWNER)
        self._thread_owners[(page.id, user_id)] = self.app_id
        return self._record_handover(call, page)

    def _request_thread_control(self, call: Call, caller: Caller, page: Page) -> dict[str, Any]:
        # The owner is only notified (a messaging_handovers webhook); nothing changes hands here.
        page = self._require_page_token(call, caller, page)
        self._receiver_role(page.id)
        self._handover_recipient(call)
        return self._record_handover(call, page)

    def _get_thread_owner(self, call: Call, caller: Caller, page: Page) -> dict[str, Any]:
        page = self._require_page_token(call, caller, page)
        role, primary_app_id = self._receiver_role(page.id)
        user_id = call.params.get("recipient")
        if not user_id:
            raise missing_parameter("recipient")
        owner = self._thread_owners.get((page.id, str(user_id)))
        if owner is None:
            # The Conversation Control guide: "Otherwise, you'll receive an empty response."
            return {"data": []}
        if role == "secondary" and owner not in (self.app_id, primary_app_id):
            raise fresh(SECONDARY_RECEIVER_HIDDEN)
        return {"data": [{"thread_owner": {"app_id": owner}}]}

    # --- checks ---

    def _require_thread_control(self, page_id: str, user_id: str) -> None:
        """The Send API's check: while another app controls the thread, our messages are refused."""
        owner = self._thread_owners.get((page_id, user_id))
        if owner is not None and owner != self.app_id:
            raise fresh(THREAD_CONTROLLED_BY_ANOTHER_APP)

    def _receiver_role(self, page_id: str) -> tuple[str, str]:
        role, primary_app_id = self._handover_roles.get(page_id, ("primary", self.app_id))
        if role is None:
            raise fresh(NOT_A_RECEIVER)
        return role, primary_app_id

    @staticmethod
    def _handover_recipient(call: Call) -> str:
        recipient = json_param(call.params, "recipient")
        if not isinstance(recipient, dict) or not recipient:
            raise missing_parameter("recipient")
        if not recipient.get("id"):
            raise oauth_error("(#100) param recipient must be non-empty.")
        return str(recipient["id"])

    def _record_handover(self, call: Call, page: Page) -> dict[str, Any]:
        body = {key: copy.deepcopy(value) for key, value in call.params.items() if key != "appsecret_proof"}
        body["recipient"] = json_param(call.params, "recipient")
        self._handover_calls.append({**body, "action": call.path.rsplit("/", 1)[-1], "page_id": page.id})
        return {"success": True}
