"""Security headers on every response, as a plain ASGI middleware (no body buffering).

A route that needs a different Content-Security-Policy (the archive shows email HTML,
which is all inline styles) sets its own header; this only fills in what is missing.
"""

from __future__ import annotations

# Pages load only our own stylesheet and script; nothing may frame them.
DEFAULT_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# Email HTML in the browser: its inline styles and remote images, never a script.
ARCHIVE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'none'; "
               "base-uri 'none'; frame-ancestors 'none'")

SECURITY_HEADERS = (
    (b"content-security-policy", DEFAULT_CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # Reader links carry their secret in the path: never hand it to another site.
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)


class SecurityHeaders:
    def __init__(self, app, *, hsts: bool = False):
        self.app = app
        self.extra = SECURITY_HEADERS + ((b"strict-transport-security", b"max-age=31536000"),) if hsts else SECURITY_HEADERS

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in self.extra if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
