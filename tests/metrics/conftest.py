"""Fixtures of the metrics tests: a connected page and conversations whose contact wrote recently."""

from tests.sending.conftest import PAGE_ID, PAGE_TOKEN, channel, conversation  # noqa: F401
