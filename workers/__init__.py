"""Every Dramatiq actor of the product, the broker they are bound to, and what runs beside them.

``workers.broker`` builds the broker before any actor module is imported; ``workers.actors`` declares every
actor; ``workers.boot`` is what ``dramatiq`` imports in each worker process. The web imports the actor modules
it sends to; the domain (``airy_actors``) never imports this package.
"""
