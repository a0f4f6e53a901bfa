"""Cognito Identity (json 1.1): ``POST /`` routed by ``X-Amz-Target: AWSCognitoIdentityService.<Op>``.

Each operation parses its input model, calls :class:`~syncsvc.identity.pools.PoolDirectory` or
:class:`~syncsvc.identity.broker.IdentityBroker`, and returns its output dict. :data:`OPERATIONS` is the surface's
table of contents and its authorization table: developer-only operations refuse identity and anonymous callers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from syncsvc.api import kms
from syncsvc.api.middleware import caller_of
from syncsvc.api.protocol import AMZ_JSON, BROKER, POOLS, SIGNER, parse, respond
from syncsvc.api.wire import seconds
from syncsvc.errors import InvalidParameterError, NotAuthorizedError, UnknownTargetError
from syncsvc.identity.pools import IdentityPool, IdentityPoolSpec
from syncsvc.model import IDENTITY_ID_PATTERN, IdentityProfile

TARGET_PREFIX = "AWSCognitoIdentityService."
Id = Annotated[str, StringConstraints(min_length=1, max_length=55, pattern=rf"^{IDENTITY_ID_PATTERN}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
LoginMap = Annotated[
    dict[Name, Annotated[str, StringConstraints(min_length=1, max_length=50000)]], Field(max_length=10)
]
Page = Annotated[int, Field(ge=1, le=60)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=65535)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PoolIdIn(Input):
    IdentityPoolId: Id


class ListIdentityPoolsIn(Input):
    MaxResults: Page
    NextToken: Token | None = None


class GetIdIn(Input):
    IdentityPoolId: Id
    AccountId: Annotated[str, StringConstraints(min_length=1, max_length=15)] | None = None
    Logins: LoginMap = {}


class IdentityLoginsIn(Input):
    IdentityId: Id
    Logins: LoginMap = {}


class GetCredentialsIn(IdentityLoginsIn):
    CustomRoleArn: Annotated[str, StringConstraints(min_length=20, max_length=2048)] | None = None


class DeveloperTokenIn(Input):
    IdentityPoolId: Id
    IdentityId: Id | None = None
    Logins: LoginMap
    PrincipalTags: dict[Name, Annotated[str, StringConstraints(max_length=256)]] | None = None
    TokenDuration: Annotated[int, Field(ge=1, le=86400)] | None = None


class LookupDeveloperIdentityIn(Input):
    IdentityPoolId: Id
    IdentityId: Id | None = None
    DeveloperUserIdentifier: UserId | None = None
    MaxResults: Page | None = None
    NextToken: Token | None = None


class MergeDeveloperIdentitiesIn(Input):
    SourceUserIdentifier: UserId
    DestinationUserIdentifier: UserId
    DeveloperProviderName: Name
    IdentityPoolId: Id


class UnlinkDeveloperIdentityIn(Input):
    IdentityId: Id
    IdentityPoolId: Id
    DeveloperProviderName: Name
    DeveloperUserIdentifier: UserId


class IdentityIdIn(Input):
    IdentityId: Id


class ListIdentitiesIn(Input):
    IdentityPoolId: Id
    MaxResults: Page
    NextToken: Token | None = None
    HideDisabled: bool | None = None


class DeleteIdentitiesIn(Input):
    IdentityIdsToDelete: Annotated[list[Id], Field(min_length=1, max_length=60)]


class UnlinkIdentityIn(Input):
    IdentityId: Id
    Logins: LoginMap
    LoginsToRemove: list[Name]


Operation = Callable[[web.Request], Awaitable[dict[str, Any]]]


def _description(profile: IdentityProfile) -> dict[str, Any]:
    return {
        "IdentityId": profile.identity_id,
        "Logins": sorted({provider for provider, _ in profile.logins}),
        "CreationDate": seconds(profile.created_ms),
        "LastModifiedDate": seconds(profile.modified_ms),
    }


# --- identity pools ---------------------------------------------------------------------------------------------------


async def create_identity_pool(request: web.Request) -> dict[str, Any]:
    return (await request.app[POOLS].create(await parse(request, IdentityPoolSpec))).wire()


async def describe_identity_pool(request: web.Request) -> dict[str, Any]:
    return (await request.app[POOLS].describe((await parse(request, PoolIdIn)).IdentityPoolId)).wire()


async def update_identity_pool(request: web.Request) -> dict[str, Any]:
    return (await request.app[POOLS].update(await parse(request, IdentityPool))).wire()


async def delete_identity_pool(request: web.Request) -> dict[str, Any]:
    await request.app[BROKER].delete_pool((await parse(request, PoolIdIn)).IdentityPoolId)
    return {}


async def list_identity_pools(request: web.Request) -> dict[str, Any]:
    given = await parse(request, ListIdentityPoolsIn)
    signer = request.app[SIGNER]
    after = None
    if given.NextToken:
        after = str(signer.open("ListIdentityPools", given.NextToken, name="NextToken")["a"])
    page = await request.app[POOLS].page(after=after, limit=given.MaxResults + 1)
    shown = page[: given.MaxResults]
    output: dict[str, Any] = {
        "IdentityPools": [{"IdentityPoolId": p.IdentityPoolId, "IdentityPoolName": p.IdentityPoolName} for p in shown]
    }
    if len(page) > given.MaxResults:
        output["NextToken"] = signer.seal("ListIdentityPools", {"a": shown[-1].IdentityPoolId})
    return output


# --- identities, credentials, tokens ------------------------------------------------------------------------------


async def get_id(request: web.Request) -> dict[str, Any]:
    given = await parse(request, GetIdIn)
    return {"IdentityId": await request.app[BROKER].get_id(given.IdentityPoolId, given.Logins)}


async def get_credentials_for_identity(request: web.Request) -> dict[str, Any]:
    given = await parse(request, GetCredentialsIn)
    profile, credentials = await request.app[BROKER].credentials_for(given.IdentityId, given.Logins)
    return {
        "IdentityId": profile.identity_id,
        "Credentials": {
            "AccessKeyId": credentials.access_key_id,
            "SecretKey": credentials.secret_key,
            "SessionToken": credentials.session_token,
            "Expiration": credentials.expires_at,
        },
    }


async def get_open_id_token(request: web.Request) -> dict[str, Any]:
    given = await parse(request, IdentityLoginsIn)
    token = await request.app[BROKER].open_id_token(given.IdentityId, given.Logins)
    return {"IdentityId": given.IdentityId, "Token": token}


async def get_open_id_token_for_developer_identity(request: web.Request) -> dict[str, Any]:
    given = await parse(request, DeveloperTokenIn)
    identity_id, token = await request.app[BROKER].developer_token(
        given.IdentityPoolId, given.IdentityId, given.Logins, given.TokenDuration
    )
    return {"IdentityId": identity_id, "Token": token}


async def lookup_developer_identity(request: web.Request) -> dict[str, Any]:
    given = await parse(request, LookupDeveloperIdentityIn)
    identity_id, users = await request.app[BROKER].lookup_developer_identity(
        given.IdentityPoolId, given.IdentityId, given.DeveloperUserIdentifier
    )
    signer, size = request.app[SIGNER], given.MaxResults or 60
    start = (
        int(signer.open("LookupDeveloperIdentity", given.NextToken, name="NextToken")["o"]) if given.NextToken else 0
    )
    output: dict[str, Any] = {"IdentityId": identity_id, "DeveloperUserIdentifierList": users[start : start + size]}
    if start + size < len(users):
        output["NextToken"] = signer.seal("LookupDeveloperIdentity", {"o": start + size})
    return output


async def merge_developer_identities(request: web.Request) -> dict[str, Any]:
    given = await parse(request, MergeDeveloperIdentitiesIn)
    identity_id = await request.app[BROKER].merge_developer_identities(
        given.IdentityPoolId, given.DeveloperProviderName, given.SourceUserIdentifier, given.DestinationUserIdentifier
    )
    return {"IdentityId": identity_id}


async def unlink_developer_identity(request: web.Request) -> dict[str, Any]:
    given = await parse(request, UnlinkDeveloperIdentityIn)
    await request.app[BROKER].unlink_developer_identity(
        given.IdentityPoolId, given.IdentityId, given.DeveloperProviderName, given.DeveloperUserIdentifier
    )
    return {}


async def unlink_identity(request: web.Request) -> dict[str, Any]:
    given = await parse(request, UnlinkIdentityIn)
    await request.app[BROKER].unlink_identity(given.IdentityId, given.Logins, given.LoginsToRemove)
    return {}


async def describe_identity(request: web.Request) -> dict[str, Any]:
    given = await parse(request, IdentityIdIn)
    return _description(await request.app[BROKER].describe(given.IdentityId))


async def list_identities(request: web.Request) -> dict[str, Any]:
    given = await parse(request, ListIdentitiesIn)
    signer = request.app[SIGNER]
    shard, after = 0, None
    if given.NextToken:
        claims = signer.open("ListIdentities", given.NextToken, name="NextToken")
        if claims.get("p") != given.IdentityPoolId:
            raise InvalidParameterError("NextToken not valid for these inputs")
        shard, after = int(claims["s"]), str(claims["a"])
    profiles, resume = await request.app[BROKER].page(
        given.IdentityPoolId, shard=shard, after=after, limit=given.MaxResults
    )
    output: dict[str, Any] = {
        "IdentityPoolId": given.IdentityPoolId,
        "Identities": [_description(profile) for profile in profiles],
    }
    if resume is not None:
        output["NextToken"] = signer.seal("ListIdentities", {"p": given.IdentityPoolId, "s": resume[0], "a": resume[1]})
    return output


async def delete_identities(request: web.Request) -> dict[str, Any]:
    given = await parse(request, DeleteIdentitiesIn)
    failed = await request.app[BROKER].delete_identities(given.IdentityIdsToDelete)
    return {"UnprocessedIdentityIds": [{"IdentityId": i, "ErrorCode": "InternalServerError"} for i in failed]}


#: Operation name -> (handler, needs developer credentials)
OPERATIONS: dict[str, tuple[Operation, bool]] = {
    "CreateIdentityPool": (create_identity_pool, True),
    "DescribeIdentityPool": (describe_identity_pool, True),
    "UpdateIdentityPool": (update_identity_pool, True),
    "ListIdentityPools": (list_identity_pools, True),
    "DeleteIdentityPool": (delete_identity_pool, True),
    "GetId": (get_id, False),
    "GetCredentialsForIdentity": (get_credentials_for_identity, False),
    "GetOpenIdToken": (get_open_id_token, False),
    "UnlinkIdentity": (unlink_identity, False),
    "GetOpenIdTokenForDeveloperIdentity": (get_open_id_token_for_developer_identity, True),
    "LookupDeveloperIdentity": (lookup_developer_identity, True),
    "MergeDeveloperIdentities": (merge_developer_identities, True),
    "UnlinkDeveloperIdentity": (unlink_developer_identity, True),
    "DescribeIdentity": (describe_identity, True),
    "ListIdentities": (list_identities, True),
    "DeleteIdentities": (delete_identities, True),
}


async def dispatch(request: web.Request) -> web.Response:
    """Every json 1.1 request (``POST /``): Cognito Identity here, KMS (``TrentService.*``) in ``syncsvc.api.kms``."""
    target = request.headers.get("X-Amz-Target", "")
    if target.startswith(kms.TARGET_PREFIX):
        return await kms.dispatch(request)
    name = target.removeprefix(TARGET_PREFIX)
    if not target.startswith(TARGET_PREFIX) or name not in OPERATIONS:
        raise UnknownTargetError(f"Operation '{target[:100]}' is not supported")
    operation, developer_only = OPERATIONS[name]
    if developer_only and not caller_of(request).is_developer:
        raise NotAuthorizedError(f"{name} needs developer credentials")
    return respond(await operation(request), content_type=AMZ_JSON)
