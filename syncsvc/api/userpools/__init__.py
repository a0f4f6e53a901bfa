"""Cognito user pools (json 1.1): ``POST /`` with ``X-Amz-Target: AWSCognitoIdentityProviderService.<Op>``.

:data:`SURFACE` is the surface's table of contents: the directory's rows (``directory.py``: pools, app clients,
groups; ``users.py``: sign-up, codes, Admin* users, ListUsers), the sign-in rows (``auth.py``) and the
self-service rows (``self_service.py``: what an access token lets a user do to its own account). Admin operations
need developer credentials (SigV4, signing name ``cognito-idp``); the public ones are served without a signature, as
AWS serves them. A broken constraint answers InvalidParameterException (Cognito user pools' name for it).
"""

from __future__ import annotations

from syncsvc.api.operations import surface
from syncsvc.api.userpools import auth, directory, self_service
from syncsvc.errors import InvalidParameterError, UserPoolNotAuthorizedError
from syncsvc.model import Caller

TARGET_PREFIX = "AWSCognitoIdentityProviderService."


def _refusal(name: str, caller: Caller) -> UserPoolNotAuthorizedError:
    return UserPoolNotAuthorizedError(f"{name} needs developer credentials")


SURFACE = surface(
    "cognito-idp",
    [*directory.OPERATIONS, *auth.OPERATIONS, *self_service.OPERATIONS],
    invalid=InvalidParameterError,
    refusal=_refusal,
    target_prefix=TARGET_PREFIX,
)
