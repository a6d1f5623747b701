"""Routes: filled in by the channels work."""

from starlette.routing import Route

ROUTES: list[Route] = []
