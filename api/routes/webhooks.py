"""Routes: filled in by the webhooks work."""

from starlette.routing import Route

ROUTES: list[Route] = []
