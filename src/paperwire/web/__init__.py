"""The web app: subscribe, confirm, manage, one-click unsubscribe, feeds, archive and a JSON API.

``create_app(settings)`` builds it; ``paperwire serve`` runs it with uvicorn.
Modules, one job each: ``app`` (wiring and error pages), ``pages`` (HTML routes),
``paperpage`` (a paper's public page), ``feedroutes`` (feeds over HTTP), ``api`` and ``apidocs`` (JSON API and its reference),
``subscriptions`` (double opt-in), ``forms`` (form input), ``data`` (cached reads),
``conditional`` (ETag/304), ``tokens`` (signing), ``ratelimit`` (limits counted in the database), ``headers``
(security headers), ``mailer`` (confirmation emails), ``context`` (shared state).
"""

from .app import check_secret, create_app

__all__ = ["check_secret", "create_app"]
