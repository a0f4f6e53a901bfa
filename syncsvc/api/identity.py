"""Cognito Identity (json 1.1): ``POST /`` with ``X-Amz-Target: AWSCognitoIdentityService.<Op>``.

:data:`SURFACE` is the surface's table of contents: each operation's input model, output shape, access rule and the
use-case it runs (:class:`~syncsvc.identity.pools.PoolDirectory`, :class:`~syncsvc.identity.broker.IdentityBroker`).
Dispatch, authorization and validation are ``syncsvc.api.operations``'s; a broken constraint is a
ValidationException in AWS's words.
"""

from __future__ import annotations

from typing import (
    Annotated,
    Any,
    NotRequired,  # pydantic describes these TypedDicts on Python 3.11
)

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict

from syncsvc.access import Access
from syncsvc.api.operations import Call, Operation, surface
from syncsvc.api.wire import seconds
from syncsvc.errors import InputValidationError, InvalidParameterError, NotAuthorizedError
from syncsvc.identity.pools import IdentityPool, IdentityPoolSpec
from syncsvc.model import IDENTITY_ID_PATTERN, Caller, IdentityProfile
from syncsvc.runtime import Services

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


# --- outputs ---------------------------------------------------------------------------------------------------------


class Empty(TypedDict):
    pass


class IdentityPoolOut(TypedDict):
    """An identity pool (``IdentityPool.wire``): its id, name and every setting."""

    IdentityPoolId: str
    IdentityPoolName: str
    AllowUnauthenticatedIdentities: bool


class PoolSummary(TypedDict):
    IdentityPoolId: str
    IdentityPoolName: str


class ListIdentityPoolsOut(TypedDict):
    IdentityPools: list[PoolSummary]
    NextToken: NotRequired[str]


class IdentityIdOut(TypedDict):
    IdentityId: str


class CredentialsOut(TypedDict):
    AccessKeyId: str
    SecretKey: str
    SessionToken: str
    Expiration: float


class GetCredentialsOut(TypedDict):
    IdentityId: str
    Credentials: CredentialsOut


class TokenOut(TypedDict):
    IdentityId: str
    Token: str


class LookupDeveloperIdentityOut(TypedDict):
    IdentityId: str
    DeveloperUserIdentifierList: list[str]
    NextToken: NotRequired[str]


class IdentityDescription(TypedDict):
    IdentityId: str
    Logins: list[str]
    CreationDate: float
    LastModifiedDate: float


class ListIdentitiesOut(TypedDict):
    IdentityPoolId: str
    Identities: list[IdentityDescription]
    NextToken: NotRequired[str]


class UnprocessedIdentityId(TypedDict):
    IdentityId: str
    ErrorCode: str


class DeleteIdentitiesOut(TypedDict):
    UnprocessedIdentityIds: list[UnprocessedIdentityId]


def _description(profile: IdentityProfile) -> IdentityDescription:
    return {
        "IdentityId": profile.identity_id,
        "Logins": sorted({provider for provider, _ in profile.logins}),
        "CreationDate": seconds(profile.created_ms),
        "LastModifiedDate": seconds(profile.modified_ms),
    }


# --- identity pools ---------------------------------------------------------------------------------------------------


async def create_identity_pool(services: Services, call: Call[IdentityPoolSpec]) -> dict[str, Any]:
    return (await services.pools.create(call.given)).wire()


async def describe_identity_pool(services: Services, call: Call[PoolIdIn]) -> dict[str, Any]:
    return (await services.pools.describe(call.given.IdentityPoolId)).wire()


async def update_identity_pool(services: Services, call: Call[IdentityPool]) -> dict[str, Any]:
    return (await services.pools.update(call.given)).wire()


async def delete_identity_pool(services: Services, call: Call[PoolIdIn]) -> Empty:
    await services.broker.delete_pool(call.given.IdentityPoolId)
    return {}


async def list_identity_pools(services: Services, call: Call[ListIdentityPoolsIn]) -> ListIdentityPoolsOut:
    given, signer = call.given, services.signer
    after = None
    if given.NextToken:
        after = str(signer.open("ListIdentityPools", given.NextToken, name="NextToken")["a"])
    page = await services.pools.page(after=after, limit=given.MaxResults + 1)
    shown = page[: given.MaxResults]
    output: ListIdentityPoolsOut = {
        "IdentityPools": [{"IdentityPoolId": p.IdentityPoolId, "IdentityPoolName": p.IdentityPoolName} for p in shown]
    }
    if len(page) > given.MaxResults:
        output["NextToken"] = signer.seal("ListIdentityPools", {"a": shown[-1].IdentityPoolId})
    return output


# --- identities, credentials, tokens ------------------------------------------------------------------------------


async def get_id(services: Services, call: Call[GetIdIn]) -> IdentityIdOut:
    return {"IdentityId": await services.broker.get_id(call.given.IdentityPoolId, call.given.Logins)}


async def get_credentials_for_identity(services: Services, call: Call[GetCredentialsIn]) -> GetCredentialsOut:
    profile, credentials = await services.broker.credentials_for(call.given.IdentityId, call.given.Logins)
    return {
        "IdentityId": profile.identity_id,
        "Credentials": {
            "AccessKeyId": credentials.access_key_id,
            "SecretKey": credentials.secret_key,
            "SessionToken": credentials.session_token,
            "Expiration": credentials.expires_at,
        },
    }


async def get_open_id_token(services: Services, call: Call[IdentityLoginsIn]) -> TokenOut:
    identity_id, token = await services.broker.open_id_token(call.given.IdentityId, call.given.Logins)
    return {"IdentityId": identity_id, "Token": token}


async def get_open_id_token_for_developer_identity(services: Services, call: Call[DeveloperTokenIn]) -> TokenOut:
    given = call.given
    identity_id, token = await services.broker.developer_token(
        given.IdentityPoolId, given.IdentityId, given.Logins, given.TokenDuration
    )
    return {"IdentityId": identity_id, "Token": token}


async def lookup_developer_identity(
    services: Services, call: Call[LookupDeveloperIdentityIn]
) -> LookupDeveloperIdentityOut:
    given, signer = call.given, services.signer
    identity_id, users = await services.broker.lookup_developer_identity(
        given.IdentityPoolId, given.IdentityId, given.DeveloperUserIdentifier
    )
    size = given.MaxResults or 60
    start = (
        int(signer.open("LookupDeveloperIdentity", given.NextToken, name="NextToken")["o"]) if given.NextToken else 0
    )
    output: LookupDeveloperIdentityOut = {
        "IdentityId": identity_id,
        "DeveloperUserIdentifierList": users[start : start + size],
    }
    if start + size < len(users):
        output["NextToken"] = signer.seal("LookupDeveloperIdentity", {"o": start + size})
    return output


async def merge_developer_identities(services: Services, call: Call[MergeDeveloperIdentitiesIn]) -> IdentityIdOut:
    given = call.given
    identity_id = await services.broker.merge_developer_identities(
        given.IdentityPoolId, given.DeveloperProviderName, given.SourceUserIdentifier, given.DestinationUserIdentifier
    )
    return {"IdentityId": identity_id}


async def unlink_developer_identity(services: Services, call: Call[UnlinkDeveloperIdentityIn]) -> Empty:
    given = call.given
    await services.broker.unlink_developer_identity(
        given.IdentityPoolId, given.IdentityId, given.DeveloperProviderName, given.DeveloperUserIdentifier
    )
    return {}


async def unlink_identity(services: Services, call: Call[UnlinkIdentityIn]) -> Empty:
    await services.broker.unlink_identity(call.given.IdentityId, call.given.Logins, call.given.LoginsToRemove)
    return {}


async def describe_identity(services: Services, call: Call[IdentityIdIn]) -> IdentityDescription:
    return _description(await services.broker.describe(call.given.IdentityId))


async def list_identities(services: Services, call: Call[ListIdentitiesIn]) -> ListIdentitiesOut:
    given, signer = call.given, services.signer
    shard, after = 0, None
    if given.NextToken:
        claims = signer.open("ListIdentities", given.NextToken, name="NextToken")
        if claims.get("p") != given.IdentityPoolId:
            raise InvalidParameterError("NextToken not valid for these inputs")
        shard, after = int(claims["s"]), str(claims["a"])
    profiles, resume = await services.broker.page(
        given.IdentityPoolId, shard=shard, after=after, limit=given.MaxResults
    )
    output: ListIdentitiesOut = {
        "IdentityPoolId": given.IdentityPoolId,
        "Identities": [_description(profile) for profile in profiles],
    }
    if resume is not None:
        output["NextToken"] = signer.seal("ListIdentities", {"p": given.IdentityPoolId, "s": resume[0], "a": resume[1]})
    return output


async def delete_identities(services: Services, call: Call[DeleteIdentitiesIn]) -> DeleteIdentitiesOut:
    failed = await services.broker.delete_identities(call.given.IdentityIdsToDelete)
    return {"UnprocessedIdentityIds": [{"IdentityId": i, "ErrorCode": "InternalServerError"} for i in failed]}


def _refusal(name: str, caller: Caller) -> NotAuthorizedError:
    return NotAuthorizedError(f"{name} needs developer credentials")


DEVELOPER, ANONYMOUS = Access.DEVELOPER, Access.ANONYMOUS
#: The Cognito Identity surface: every operation, its input, output, who may call it and what it runs.
SURFACE = surface(
    "cognito-identity",
    [
        Operation("CreateIdentityPool", IdentityPoolSpec, IdentityPoolOut, DEVELOPER, create_identity_pool),
        Operation("DescribeIdentityPool", PoolIdIn, IdentityPoolOut, DEVELOPER, describe_identity_pool),
        Operation("UpdateIdentityPool", IdentityPool, IdentityPoolOut, DEVELOPER, update_identity_pool),
        Operation("ListIdentityPools", ListIdentityPoolsIn, ListIdentityPoolsOut, DEVELOPER, list_identity_pools),
        Operation("DeleteIdentityPool", PoolIdIn, Empty, DEVELOPER, delete_identity_pool),
        Operation("GetId", GetIdIn, IdentityIdOut, ANONYMOUS, get_id),
        Operation(
            "GetCredentialsForIdentity", GetCredentialsIn, GetCredentialsOut, ANONYMOUS, get_credentials_for_identity
        ),
        Operation("GetOpenIdToken", IdentityLoginsIn, TokenOut, ANONYMOUS, get_open_id_token),
        Operation("UnlinkIdentity", UnlinkIdentityIn, Empty, ANONYMOUS, unlink_identity),
        Operation(
            "GetOpenIdTokenForDeveloperIdentity",
            DeveloperTokenIn,
            TokenOut,
            DEVELOPER,
            get_open_id_token_for_developer_identity,
        ),
        Operation(
            "LookupDeveloperIdentity",
            LookupDeveloperIdentityIn,
            LookupDeveloperIdentityOut,
            DEVELOPER,
            lookup_developer_identity,
        ),
        Operation(
            "MergeDeveloperIdentities", MergeDeveloperIdentitiesIn, IdentityIdOut, DEVELOPER, merge_developer_identities
        ),
        Operation("UnlinkDeveloperIdentity", UnlinkDeveloperIdentityIn, Empty, DEVELOPER, unlink_developer_identity),
        Operation("DescribeIdentity", IdentityIdIn, IdentityDescription, DEVELOPER, describe_identity),
        Operation("ListIdentities", ListIdentitiesIn, ListIdentitiesOut, DEVELOPER, list_identities),
        Operation("DeleteIdentities", DeleteIdentitiesIn, DeleteIdentitiesOut, DEVELOPER, delete_identities),
    ],
    invalid=InputValidationError,
    refusal=_refusal,
    target_prefix="AWSCognitoIdentityService.",
)
