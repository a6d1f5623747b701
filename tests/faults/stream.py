"""A stream of signed webhook batches, delivered the way Facebook delivers them: retried until answered 200."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from tests.support import entry, sign, text_message, webhook_body

RETRY_PAUSE_S = 0.2
REQUEST_TIMEOUT_S = 15.0


@dataclass
class Batch:
    """One webhook request: its exact body, the mids of its events, and every outcome of its attempts."""

    number: int
    body: bytes
    mids: list[str]
    outcomes: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return bool(self.outcomes) and self.outcomes[-1] == "200"

    def __repr__(self) -> str:
        return f"<Batch {self.number}: {', '.join(self.outcomes) or 'never sent'}>"


def make_batches(page_id: str, *, count: int, events_per_batch: int, contacts: int, tag: str) -> list[Batch]:
    """``count`` batches of text messages with unique mids, spread over ``contacts`` contacts.

    ``tag`` keeps the mids (and so the bodies) of one test apart from another's.
    """
    batches = []
    for number in range(count):
        events, mids = [], []
        for index in range(events_per_batch):
            serial = number * events_per_batch + index
            mid = f"m_{tag}_{serial}"
            psid = str(9_000_000 + serial % contacts)
            events.append(text_message(page_id, psid, mid, f"hello {serial}", timestamp=1_700_000_000_000 + serial))
            mids.append(mid)
        batches.append(Batch(number, webhook_body(entry(page_id, *events)), mids))
    return batches


class WebhookStream:
    """Sends batches to ``POST /facebook`` from ``senders`` threads, about ``rate`` requests a second in all.

    A batch that gets anything but 200 (an error status, a refused or broken connection) is sent again,
    unchanged, after a short pause, until ``give_up_after_s`` has passed since its first attempt.

    Parameters:
      url: the web's base URL; it may restart on the same port while the stream runs.
      batches: what to send, in order.
      rate: requests started per second (first attempts), across all senders.
      senders: how many requests may be in flight at once.
      give_up_after_s: how long one batch is retried.
    """

    def __init__(
        self, url: str, batches: list[Batch], *, rate: float, senders: int = 4, give_up_after_s: float = 60.0
    ) -> None:
        self.url = url
        self.batches = batches
        self.rate = rate
        self.senders = senders
        self.give_up_after_s = give_up_after_s
        self.sent = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="webhook-stream")
        self._futures: list = []
        self._thread = threading.Thread(target=self._pace, name="webhook-stream-pacer", daemon=True)

    def start(self) -> WebhookStream:
        self._thread.start()
        return self

    def finish(self, timeout: float) -> None:
        """Waits until every batch was answered 200 or given up on."""
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        for future in list(self._futures):
            future.result(timeout=max(0.1, deadline - time.monotonic()))
        self._pool.shutdown(wait=False)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() or any(not future.done() for future in self._futures)

    def outcomes(self) -> Counter[str]:
        """How many attempts ended how: ``"200"``, ``"503"``, ``"ConnectError"``, ..."""
        return Counter(outcome for batch in self.batches for outcome in batch.outcomes)

    def unanswered(self) -> list[Batch]:
        return [batch for batch in self.batches if not batch.answered]

    def answered_mids(self) -> list[str]:
        return [mid for batch in self.batches if batch.answered for mid in batch.mids]

    def _pace(self) -> None:
        started = time.monotonic()
        for number, batch in enumerate(self.batches):
            pause = started + number / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._futures.append(self._pool.submit(self._deliver, batch))

    def _deliver(self, batch: Batch) -> None:
        headers = sign(batch.body)
        deadline = time.monotonic() + self.give_up_after_s
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            while time.monotonic() < deadline:
                try:
                    response = client.post(f"{self.url}/facebook", content=batch.body, headers=headers)
                    outcome = str(response.status_code)
                except httpx.TransportError as error:
                    outcome = type(error).__name__
                batch.outcomes.append(outcome)
                if outcome == "200":
                    with self._lock:
                        self.sent += 1
                    return
                time.sleep(RETRY_PAUSE_S)
