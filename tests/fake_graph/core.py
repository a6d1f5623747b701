"""Who is who in the fake: the app and its address, pages, users, their tokens, linked Instagram accounts.

``GraphCore`` holds that state and the checks every endpoint makes with it; the other parts of the
fake (``pages``, ``handover``, ``messenger``, ``instagram``, ``attachments``, ``files``) build on it.
Methods whose names start with ``_`` expect ``self._lock`` to be held.
"""

from __future__ import annotations

import hashlib
import threading

from .errors import INVALID_TOKEN, MALFORMED_TOKEN, PAGE_TOKEN_REQUIRED, fresh, unsupported
from .nodes import Caller, InstagramAccount, Page, User
from .wire import Call

DEFAULT_APP_ID = "1517776481860111"
DEFAULT_APP_NAME = "Airy"
PAGE_INBOX_APP_ID = "263902037430900"
"""The app id of the Facebook Page Inbox, the usual other party of the handover protocol."""


class GraphCore:
    """The identities the fake knows, guarded by one lock."""

    def __init__(self, app_id: str, app_name: str, version: str) -> None:
        self.app_id = app_id
        """Our app: every page token stands for this app (handover roles, echoes)."""
        self.app_name = app_name
        self.version = version
        self._port: int | None = None
        self._lock = threading.Lock()

    def _init_core_state(self) -> None:
        """Called by ``FakeGraph`` when it starts and on ``reset``, like every part's ``_init_*_state``."""
        self._pages: dict[str, Page] = {}
        self._page_tokens: dict[str, str] = {}
        self._users: dict[str, User] = {}
        self._invalid_tokens: set[str] = set()
        self._instagram_accounts: dict[str, InstagramAccount] = {}
        """account id -> account; a page has at most one (see ``_instagram_account_of``)."""

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``, without the version."""
        if self._port is None:
            raise RuntimeError("FakeGraph is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The base URL including the version, e.g. ``http://127.0.0.1:41234/v25.0``."""
        return f"{self.origin}/{self.version}"

    # --- scenario set-up ---

    def add_page(self, page_id: str, name: str, token: str, picture_url: str | None = None) -> None:
        """Add (or replace) a page and its page access token; the token becomes valid again."""
        with self._lock:
            previous = self._pages.get(page_id)
            if previous is not None:
                self._page_tokens.pop(previous.token, None)
            url = picture_url or f"https://scontent.xx.fbcdn.net/v/t39.30808-1/{page_id}_n.jpg"
            self._pages[page_id] = Page(page_id, name, token, url)
            self._page_tokens[token] = page_id
            self._invalid_tokens.discard(token)

    def add_user(
        self, user_token: str, page_ids: list[str], *, user_id: str | None = None, name: str = "Test User"
    ) -> None:
        """Add a user token managing ``page_ids`` (listed by ``/me/accounts`` in this order).

        Pages not added (yet) are skipped when answering. ``user_id`` defaults to a number derived
        from the token.
        """
        with self._lock:
            uid = user_id or number_from(user_token)
            self._users[user_token] = User(uid, name, user_token, list(dict.fromkeys(page_ids)))
            self._invalid_tokens.discard(user_token)

    def invalidate_token(self, token: str) -> None:
        """Make every later call with ``token`` fail with error 190, subcode 460."""
        with self._lock:
            self._invalid_tokens.add(token)

    # --- checks made by the endpoints ---

    def _authenticate(self, token: str | None) -> Caller:
        if token is not None and token in self._invalid_tokens:
            raise fresh(INVALID_TOKEN)
        if token is not None and token in self._page_tokens:
            return self._pages[self._page_tokens[token]]
        if token is not None and token in self._users:
            return self._users[token]
        raise fresh(MALFORMED_TOKEN)

    @staticmethod
    def _may_see_page(caller: Caller, page_id: str) -> bool:
        """A page token sees its own page, a user token the pages it manages."""
        if isinstance(caller, Page):
            return caller.id == page_id
        return page_id in caller.page_ids

    @staticmethod
    def _require_page_token(call: Call, caller: Caller, page: Page) -> Page:
        """Endpoints that act as the page (send, subscribe, handover) need that page's token."""
        if caller is page:
            return page
        if isinstance(caller, User) and page.id in caller.page_ids:
            raise fresh(PAGE_TOKEN_REQUIRED)
        raise unsupported(call.method, page.id)

    def _instagram_account_of(self, page_id: str) -> InstagramAccount | None:
        for account in self._instagram_accounts.values():
            if account.page_id == page_id:
                return account
        return None


def number_from(text: str) -> str:
    """A stable 15-digit id derived from ``text``, shaped like Facebook's numeric ids."""
    digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return str(10**14 + digest % (9 * 10**14))
