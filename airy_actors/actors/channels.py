"""Actors: filled in by the channels work."""
