"""Routes: filled in by the sending work."""

from starlette.routing import Route

ROUTES: list[Route] = []
