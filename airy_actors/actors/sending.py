"""Actors: filled in by the sending work."""
