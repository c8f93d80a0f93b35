"""CORS for browsers on other origins (GraphiQL elsewhere, frontends on their own domain).

Allowed origins come from `CORS_ALLOWED_ORIGINS` (comma-separated; default none: no CORS
headers at all, so browsers refuse cross-origin reads). Credentials (cookies, HTTP auth) are
allowed only with `CORS_ALLOW_CREDENTIALS=true` and never together with `*`: that
configuration is refused at start-up. Preflights allow the headers the gateway reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from gateway.env_values import flag, integer

__all__ = ["ALLOWED_HEADERS", "CorsSettings", "cors_middleware", "load_cors_settings"]

# Headers a browser client may send: credentials, media type, the CSRF preflight headers and
# Apollo's client identification.
ALLOWED_HEADERS = (
    "authorization",
    "x-api-key",
    "content-type",
    "accept",
    "x-request-id",
    "graphql-preflight",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "apollographql-client-name",
    "apollographql-client-version",
)
# Response headers a browser script may read.
EXPOSED_HEADERS = ("x-request-id", "retry-after", "ratelimit", "ratelimit-policy")


@dataclass(frozen=True, slots=True)
class CorsSettings:
    allowed_origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age_seconds: int = 600

    def __post_init__(self) -> None:
        if self.allow_credentials and "*" in self.allowed_origins:
            raise ValueError(
                "CORS_ALLOW_CREDENTIALS with CORS_ALLOWED_ORIGINS='*' would let every site "
                "read responses with the user's credentials: list the origins instead"
            )
        for origin in self.allowed_origins:
            if origin != "*" and not origin.startswith(("https://", "http://")):
                raise ValueError(f"CORS origin {origin!r} must be '*' or start with http(s)://")


def load_cors_settings(env: Mapping[str, str]) -> CorsSettings:
    origins = tuple(
        origin.strip().rstrip("/")
        for origin in env.get("CORS_ALLOWED_ORIGINS", "").split(",")
        if origin.strip()
    )
    defaults = CorsSettings()
    return CorsSettings(
        allowed_origins=origins,
        allow_credentials=flag(env, "CORS_ALLOW_CREDENTIALS", defaults.allow_credentials),
        max_age_seconds=integer(env, "CORS_MAX_AGE_SECONDS", defaults.max_age_seconds, minimum=0),
    )


def cors_middleware(settings: CorsSettings) -> list[Middleware]:
    """The middleware stack entry for `settings`; none when no origin is allowed."""
    if not settings.allowed_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=list(ALLOWED_HEADERS),
            expose_headers=list(EXPOSED_HEADERS),
            allow_credentials=settings.allow_credentials,
            max_age=settings.max_age_seconds,
        )
    ]
