"""Per-page throttling of the Send API, below Meta's limits, shared by every worker through Redis.

Facebook allows a page 300 Send API calls a second for text (and other messages), and 10 a second for audio
and video attachments; Instagram allows an account 100 a second for text, and 10 for audio and video. Each page
(Messenger) and each Instagram account is counted on its own, at its platform's rates. The limits are kept in
Redis as fixed buckets, the algorithm of Dramatiq's
:class:`~dramatiq.rate_limits.BucketRateLimiter`: at most ``limit`` sends per bucket of ``bucket_ms``. A slot
is one Lua script (count, and refuse past the limit), one round trip that cannot race, where Dramatiq's
limiter takes up to four under WATCH and retries when another worker wrote the same bucket meanwhile.
Buckets are cheap but fixed, so any sliding second overlaps ``1000 / bucket_ms + 1`` of them; the rates below
keep even that worst case under Facebook's limit:

* Messenger text: 25 per 100 ms, 250/s sustained, at most 275 in any second (Facebook: 300);
* Instagram text: 8 per 100 ms, 80/s sustained, at most 88 in any second (Instagram: 100);
* audio and video, on both: 1 per 200 ms, 5/s sustained, at most 6 in any second (Meta: 10), and each also
  takes a text slot, since it is a Send API call too.

The margins absorb the jitter between taking a slot and Facebook receiving the call (the network, a busy
worker): Facebook counts arrivals, not our intentions.

A send that finds the bucket full waits for the next one, a bounded time; a burst is so smoothed rather
than refused. Past the bound the caller re-enqueues the send (see airy_actors.sending), which costs no retry.
A batch of sends asks for its slots at once, and sends what it got; the rest is re-enqueued the same way.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from airy_actors.models import FACEBOOK, INSTAGRAM

MEDIA_TYPES = frozenset({"audio", "video"})

# KEYS[1]: the bucket; ARGV: the limit, the bucket's lifetime (ms), the slots wanted. Returns the slots taken,
# from none to all of them. Counting past the limit is harmless: the bucket only ever refuses from then on,
# and expires with its time.
TAKE_SLOTS = """
local wanted = tonumber(ARGV[3])
local taken = redis.call('INCRBY', KEYS[1], wanted)
if taken == wanted then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local free = tonumber(ARGV[1]) - (taken - wanted)
if free <= 0 then
  return 0
end
return math.min(free, wanted)
"""


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` sends in each bucket of ``bucket_ms`` milliseconds."""

    limit: int
    bucket_ms: int

    @property
    def worst_second(self) -> int:
        """The most sends any sliding second can see under this rate."""
        return self.limit * (-(-1000 // self.bucket_ms) + 1)


TEXT_RATE = Rate(limit=25, bucket_ms=100)
MEDIA_RATE = Rate(limit=1, bucket_ms=200)
INSTAGRAM_TEXT_RATE = Rate(limit=8, bucket_ms=100)
INSTAGRAM_MEDIA_RATE = Rate(limit=1, bucket_ms=200)
MAX_WAIT_MS = 2_000  # how long a send waits in its thread for a slot before it is re-enqueued


def rates(platform: str) -> tuple[Rate, Rate]:
    """The text and the media rates of a platform (a channel's ``source``); Messenger's for any other."""
    # Read at each call, so that a test can change a rate of this module.
    if platform == INSTAGRAM:
        return INSTAGRAM_TEXT_RATE, INSTAGRAM_MEDIA_RATE
    return TEXT_RATE, MEDIA_RATE


def is_media(message: dict[str, Any]) -> bool:
    """Whether a Send API ``message`` is an audio or video attachment (Facebook's 10/s limit)."""
    attachment = message.get("attachment")
    return isinstance(attachment, dict) and attachment.get("type") in MEDIA_TYPES


class PageThrottle:
    """Slots for Send API calls, per page (or Instagram account), counted in Redis.

    Parameters:
      client: the Redis client (the broker's).
      namespace: prefixes the keys (the broker's namespace), so that deployments sharing a Redis don't mix.
    """

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.take_slots = client.register_script(TAKE_SLOTS)
        self.namespace = namespace

    def acquire(
        self,
        page_id: str,
        *,
        media: bool,
        platform: str = FACEBOOK,
        max_wait_ms: int | None = None,
        before_waiting: Callable[[], object] | None = None,
    ) -> bool:
        """Takes a slot for one send by ``page_id``, waiting for one up to ``max_wait_ms``.

        Parameters:
          page_id: the page, or the Instagram account, that sends.
          platform: the channel's source, whose rates apply.
          before_waiting: called before each pause for a slot, so that the caller can hand back what it should
            not hold while it sleeps (its database connection); not called when a slot is free at once.

        Returns:
          Whether the slot was taken; when False the caller must not send now.
        """
        wait_ms = MAX_WAIT_MS if max_wait_ms is None else max_wait_ms
        deadline = time.monotonic() + wait_ms / 1000
        # The scarcer slot first: a text slot taken for a video that then finds no media slot would be wasted.
        text_rate, media_rate = rates(platform)
        wanted = [("media", media_rate), ("text", text_rate)] if media else [("text", text_rate)]
        for kind, rate in wanted:
            if not self._wait_for_slots(self._key(page_id, kind), rate, 1, deadline, before_waiting):
                return False
        return True

    def acquire_text(
        self,
        page_id: str,
        count: int,
        *,
        platform: str = FACEBOOK,
        max_wait_ms: int | None = None,
        before_waiting: Callable[[], object] | None = None,
    ) -> int:
        """Takes up to ``count`` text slots for ``page_id`` at once, waiting up to ``max_wait_ms`` for the first.

        A batch of sends so costs one round trip to Redis. It does not wait for the next bucket once it has
        some slots: sends must reach Facebook in the bucket of their slots.

        Parameters:
          platform, before_waiting: as for :meth:`acquire`.

        Returns:
          How many slots were taken, from 0 to ``count``; the caller must send no more than that now.
        """
        wait_ms = MAX_WAIT_MS if max_wait_ms is None else max_wait_ms
        deadline = time.monotonic() + wait_ms / 1000
        text_rate, _ = rates(platform)
        return self._wait_for_slots(self._key(page_id, "text"), text_rate, count, deadline, before_waiting)

    def _key(self, page_id: str, kind: str) -> str:
        return f"{self.namespace}:throttle:{page_id}:{kind}"

    def _wait_for_slots(
        self, key: str, rate: Rate, count: int, deadline: float, before_waiting: Callable[[], object] | None
    ) -> int:
        while True:
            now_ms = int(time.time() * 1000)
            bucket = now_ms - now_ms % rate.bucket_ms
            # The key names the bucket as Dramatiq's limiter does, so a rolling upgrade keeps counting together.
            taken = int(self.take_slots(keys=[f"{key}@{bucket}"], args=[rate.limit, rate.bucket_ms, count]))
            if taken:
                return taken
            # Sleep into the next bucket, spread a little, so that the waiters don't all knock at its first instant.
            pause_s = (bucket + rate.bucket_ms - time.time() * 1000 + random.uniform(0, rate.bucket_ms / 4)) / 1000
            if time.monotonic() + pause_s > deadline:
                return 0
            if before_waiting is not None:
                before_waiting()
            time.sleep(max(pause_s, 0.0))
