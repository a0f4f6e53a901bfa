"""OidcProvider: one OpenID Connect provider as configured (``SYNCSVC_OIDC_PROVIDERS``), checked when loaded.

Settings hold these, so this module imports pydantic only: no HTTP client, no JWT library (``syncsvc.identity.oidc``
verifies tokens with them).
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The algorithms a provider may list: asymmetric signatures only, so a public key can never serve as an HMAC secret.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)


class OidcProvider(BaseModel):
    """One OpenID Connect provider whose ID tokens are accepted as federated logins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The key in a Cognito ``Logins`` map, e.g. ``accounts.google.com`` or ``login.example.com``.
    name: str = Field(min_length=1, max_length=128)
    #: The exact ``iss`` the provider's tokens carry.
    issuer: str = Field(min_length=1)
    #: Client ids accepted as ``aud`` besides those the identity pool allows.
    audiences: tuple[str, ...] = ()
    #: Where the provider publishes its keys: exactly one of an http(s) URL or a local file.
    jwks_url: str | None = None
    jwks_file: str | None = None
    #: The signing algorithms accepted (asymmetric only).
    algorithms: tuple[str, ...] = ("RS256",)
    #: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    leeway_seconds: int = Field(default=60, ge=0, le=3600)

    @field_validator("audiences")
    @classmethod
    def _nonempty_audiences(cls, audiences: tuple[str, ...]) -> tuple[str, ...]:
        if any(not audience for audience in audiences):
            raise ValueError("an audience (client id) cannot be empty")
        return audiences

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_algorithms(cls, algorithms: tuple[str, ...]) -> tuple[str, ...]:
        if not algorithms:
            raise ValueError("at least one signing algorithm is required")
        for algorithm in algorithms:
            if algorithm.lower() == "none":
                raise ValueError("algorithm 'none' is not allowed: ID tokens must be signed")
            if algorithm.upper().startswith("HS"):
                raise ValueError(f"algorithm '{algorithm}' is not allowed: only asymmetric algorithms can be used")
            if algorithm not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(
                    f"unknown algorithm '{algorithm}': use one of {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
                )
        return algorithms

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError("jwks_url must be an http(s) URL")
        return url

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of jwks_url and jwks_file")
        return self
