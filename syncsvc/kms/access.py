"""What a caller of the public KMS API may do with a key: the key-level half of KMS authorization.

Which operations a caller may call at all is each operation's access rule (``syncsvc.api.kms``: identities only those
a grant can allow). Callers are principals (``syncsvc.kms.policy``: a developer is
``arn:aws:iam::000000000000:user/<access key id>``, an identity ``arn:aws:sts::000000000000:assumed-role/Cognito/
<identity id>``). :class:`KeyAccess` decides:

* whether a caller may perform an operation on a key (:meth:`KeyAccess.authorize`): a developer passes when the
  key's policy allows it (the default policy allows every developer) or a grant does; an identity only through a grant
  naming it as GranteePrincipal (with matching encryption-context constraints). An explicit Deny in the key policy
  refuses anyone. An identity learns nothing of which keys exist (see :meth:`KeyAccess.authorize`);
* grant tokens: a GrantToken is the key id and grant id sealed with the deployment's token signer. Grants count at
  once (no eventual consistency), so GrantTokens are only checked to be tokens syncsvc issued
  (InvalidGrantTokenException otherwise); RetireGrant opens one to find its grant.

Who may retire a grant is the grant's own rule (``KeyPermissions.retire_grant``). It works on the public view of
the keys (``KeyService.public``: syncsvc's internal keys do not exist there) and touches nothing but the key service
and the token signer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from syncsvc.errors import (
    InvalidArnError,
    InvalidGrantTokenError,
    InvalidParameterError,
    KmsNotFoundError,
    KmsValidationError,
)
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.policy import Grant, principal_of
from syncsvc.model import Caller
from syncsvc.tokens import TokenSigner

#: The token-signer purpose of grant tokens.
_GRANT_PURPOSE = "kms:GrantToken"


class KeyAccess:
    """Answers "may this caller do this operation on this key", and seals and opens grant tokens."""

    def __init__(self, kms: KeyService, signer: TokenSigner) -> None:
        self._kms = kms.public
        self._signer = signer

    async def authorize(
        self,
        caller: Caller,
        operation: str,
        key_ref: str,
        *,
        context: Mapping[str, str] | None = None,
        grant_tokens: Sequence[str] = (),
    ) -> None:
        """AccessDeniedException unless the caller may perform ``operation`` on the key (``syncsvc.kms.policy``).

        A key that does not resolve is left to the operation for a developer (which answers its own NotFound or
        validation error). An identity learns nothing of which keys exist: a key id, ARN or alias that does not exist
        (or names an internal key) gets the same AccessDeniedException, word for word, as a key that exists but that no
        grant lets it use. That is what AWS KMS answers a principal without permission on a key (a key ARN of another
        account, whether or not the key exists); a malformed ARN stays InvalidArnException (it depends on the text
        alone)."""
        self.check_grant_tokens(grant_tokens)
        permissions = self._kms.permissions
        principal = principal_of(caller)
        try:
            await permissions.authorize(key_ref, principal, operation, developer=caller.is_developer, context=context)
        except KmsNotFoundError:
            if not caller.is_developer:
                raise permissions.access_denied(principal, operation, key_ref) from None
        except InvalidArnError:
            if not caller.is_developer:
                raise

    async def authorize_each(
        self,
        caller: Caller,
        operation: str,
        key_refs: Iterable[str | None],
        *,
        context: Mapping[str, str] | None = None,
        grant_tokens: Sequence[str] = (),
    ) -> None:
        """:meth:`authorize` for every key a request names (None: not named), each once."""
        for key_ref in dict.fromkeys(ref for ref in key_refs if ref is not None):
            await self.authorize(caller, operation, key_ref, context=context, grant_tokens=grant_tokens)

    # --- grant tokens -------------------------------------------------------------------------------------------------

    def grant_token(self, grant: Grant) -> str:
        """CreateGrant's GrantToken for ``grant``."""
        return self._signer.seal(_GRANT_PURPOSE, {"k": grant.key_id, "g": grant.grant_id})

    def check_grant_tokens(self, tokens: Iterable[str]) -> None:
        """InvalidGrantTokenException unless every token is a grant token syncsvc issued."""
        for token in tokens:
            self._open_grant_token(token)

    def named_grant(self, token: str | None, key_ref: str | None, grant_id: str | None) -> tuple[str, str]:
        """(key, grant id) of the grant RetireGrant names: by its GrantToken, or by KeyId and GrantId
        (ValidationException without either)."""
        if token is not None:
            claims = self._open_grant_token(token)
            return str(claims["k"]), str(claims["g"])
        if key_ref is not None and grant_id is not None:
            return key_ref, grant_id
        raise KmsValidationError("RetireGrant takes a GrantToken, or a KeyId and a GrantId")

    def _open_grant_token(self, token: str) -> dict[str, object]:
        try:
            return self._signer.open(_GRANT_PURPOSE, token, name="GrantToken")
        except InvalidParameterError:
            raise InvalidGrantTokenError("The grant token is not valid") from None
