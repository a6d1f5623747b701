"""Instagram Messaging through the Messenger Platform: linked accounts, IGSID profiles, sends.

A page may have a linked Instagram professional account (``add_instagram_account``); it shows as the
page's ``instagram_business_account`` field and answers ``GET /{account_id}``. People on Instagram are
known by their Instagram-scoped id (``add_instagram_contact``). Sends into Instagram use the page's
``/{page_id}/messages`` (or ``/me/messages``) with the page token and an IGSID as ``recipient.id``;
they are recorded apart from Messenger's (``sent_instagram_messages``). The fake posts no echo
webhooks for them.
"""

from __future__ import annotations

import base64
import copy
import secrets
from typing import Any

from .errors import IG_NO_MATCHING_USER, IG_OUTSIDE_WINDOW, IG_PAGE_NOT_LINKED, fresh, oauth_error, unsupported
from .messenger import Messenger
from .nodes import (
    Caller,
    InstagramAccount,
    InstagramContact,
    Page,
    instagram_account_fields,
    render,
    requested_fields,
)
from .wire import Call

MAX_TEXT_BYTES = 1000
"""Instagram's Send a Message guide: "Message text must be UTF-8 and be a 1000 bytes or less"."""


class Instagram(Messenger):
    """Instagram accounts, the people writing to them, and what was sent to those people."""

    def _init_instagram_state(self) -> None:
        self._instagram_contacts: dict[str, InstagramContact] = {}
        self._instagram_sent: list[dict[str, Any]] = []
        self._instagram_sender_actions: list[dict[str, Any]] = []

    # --- scenario set-up ---

    def add_instagram_account(
        self,
        page_id: str,
        account_id: str,
        username: str,
        *,
        profile_picture_url: str | None = None,
        name: str | None = None,
    ) -> None:
        """Link an Instagram professional account to a page (replacing the page's previous one).

        Tokens that see the page see the account: ``GET /{account_id}?fields=username,name,
        profile_picture_url``. Fields left None are left out of answers, as Facebook leaves out unset
        fields.
        """
        with self._lock:
            for linked in [a for a in self._instagram_accounts.values() if a.page_id == page_id]:
                del self._instagram_accounts[linked.id]
            self._instagram_accounts[account_id] = InstagramAccount(
                account_id, page_id, username, profile_picture_url, name
            )

    def add_instagram_contact(
        self,
        igsid: str,
        *,
        name: str | None = None,
        username: str | None = None,
        profile_pic: str | None = None,
        account_id: str | None = None,
    ) -> None:
        """Add a person on Instagram, known by their Instagram-scoped id.

        ``GET /{igsid}?fields=name,username,profile_pic`` leaves out the fields left None (Meta: the
        name and the picture "can be null if not set").

        Parameters:
          account_id: the Instagram account the IGSID is scoped to; other accounts' pages cannot see
            the person and sends from them fail with ``IG_NO_MATCHING_USER``. None: every page with a
            linked account.
        """
        with self._lock:
            self._instagram_contacts[igsid] = InstagramContact(igsid, name, username, profile_pic, account_id)

    # --- recordings ---

    @property
    def sent_instagram_messages(self) -> list[dict[str, Any]]:
        """Every accepted Instagram message: the Send API body, plus ``page_id``, ``account_id`` (the
        Instagram account it was sent from) and the returned ``message_id``."""
        with self._lock:
            return copy.deepcopy(self._instagram_sent)

    @property
    def instagram_sender_actions(self) -> list[dict[str, Any]]:
        """Every accepted Instagram ``sender_action`` body, plus ``page_id`` and ``account_id``."""
        with self._lock:
            return copy.deepcopy(self._instagram_sender_actions)

    # --- handlers ---

    def _get_instagram_account(self, call: Call, caller: Caller, account: InstagramAccount) -> dict[str, Any]:
        if not self._may_see_page(caller, account.page_id):
            raise unsupported(call.method, account.id)
        fields = requested_fields(call.params.get("fields"), ("id",))
        return render("IGUser", instagram_account_fields(account), fields)

    def _get_instagram_contact(self, call: Call, caller: Caller, contact: InstagramContact) -> dict[str, Any]:
        account = self._instagram_account_of(caller.id) if isinstance(caller, Page) else None
        if account is None or contact.account_id not in (None, account.id):
            raise unsupported(call.method, contact.igsid)
        available = {
            "id": contact.igsid,
            "name": contact.name,
            "username": contact.username,
            "profile_pic": contact.profile_pic,
        }
        # The User Profile API documents no default; name and profile_pic are its fields for every version.
        fields = requested_fields(call.params.get("fields"), ("name", "profile_pic", "id"))
        return render("User", available, fields)

    def _send_instagram(self, call: Call, page: Page, recipient: dict[str, Any]) -> dict[str, Any]:
        igsid = str(recipient["id"])
        account = self._instagram_account_of(page.id)
        if account is None:
            raise fresh(IG_PAGE_NOT_LINKED)
        if self._instagram_contacts[igsid].account_id not in (None, account.id):
            raise fresh(IG_NO_MATCHING_USER)
        message, sender_action = self._message_or_action(call)
        body = self._recorded_body(call, recipient)
        origin = {"page_id": page.id, "account_id": account.id}
        if sender_action is not None:
            self._instagram_sender_actions.append({**body, **origin})
            return {"recipient_id": igsid}
        self._check_message(call.params, message, MAX_TEXT_BYTES)
        text = message.get("text")
        if isinstance(text, str) and len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise oauth_error(f"(#100) Length of param message[text] must be less than or equal to {MAX_TEXT_BYTES}")
        self._check_window(igsid, call.params, IG_OUTSIDE_WINDOW)
        self._require_thread_control(page.id, igsid)
        self._check_attachment_reference(page.id, message)
        message_id = _instagram_message_id()
        self._instagram_sent.append({**body, "message": message, **origin, "message_id": message_id})
        return {"recipient_id": igsid, "message_id": message_id}


def _instagram_message_id() -> str:
    # Instagram message ids are opaque base64 text starting "aWdfZA" (base64 of "ig_d"), e.g.
    # "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx..."; the fake makes ids of that shape.
    return "aWdfZA" + base64.urlsafe_b64encode(secrets.token_bytes(96)).decode().rstrip("=")
