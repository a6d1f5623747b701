"""Declares every actor of the product on the broker (importing a module declares its actors)."""

from workers import channels, handover, ingestion, integrations, media, sending, sweeper

__all__ = ["channels", "handover", "ingestion", "integrations", "media", "sending", "sweeper"]
