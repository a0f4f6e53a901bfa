"""Cognito user pools' directory operations: pools, app clients and groups (json 1.1, developer credentials).

Each row runs :class:`~syncsvc.userpools.directory.UserDirectory`. The users' operations are
``syncsvc.api.userpools.users``'s; :data:`OPERATIONS` holds both.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict

from syncsvc.access import Access
from syncsvc.api.operations import Call, Operation
from syncsvc.api.userpools import users
from syncsvc.errors import InvalidParameterError
from syncsvc.runtime import Services
from syncsvc.userpools.model import (
    AuthFlow,
    ClientId,
    Document,
    TokenValidityUnitsType,
    UserPoolId,
    UserPoolSettings,
    UserPoolSpec,
)

Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w\s+=,.@-]+$")]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\p{L}\p{M}\p{S}\p{N}\p{P}]+$")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=131072)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
DEVELOPER = Access.DEVELOPER


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PoolIdIn(Input):
    UserPoolId: UserPoolId


class UpdateUserPoolIn(UserPoolSettings):
    UserPoolId: UserPoolId


class ListUserPoolsIn(Input):
    MaxResults: Annotated[int, Field(ge=1, le=60)]
    NextToken: Token | None = None


class ClientSettingsIn(Input):
    ClientName: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w\s+=,.@-]+$")]
    RefreshTokenValidity: Annotated[int, Field(ge=0, le=315360000)] | None = None
    AccessTokenValidity: Annotated[int, Field(ge=1, le=86400)] | None = None
    IdTokenValidity: Annotated[int, Field(ge=1, le=86400)] | None = None
    TokenValidityUnits: TokenValidityUnitsType | None = None
    ReadAttributes: list[str] | None = None
    WriteAttributes: list[str] | None = None
    ExplicitAuthFlows: list[AuthFlow] | None = None
    SupportedIdentityProviders: list[str] | None = None
    CallbackURLs: Annotated[list[Url], Field(max_length=100)] | None = None
    LogoutURLs: Annotated[list[Url], Field(max_length=100)] | None = None
    DefaultRedirectURI: Url | None = None
    AllowedOAuthFlows: list[Literal["code", "implicit", "client_credentials"]] | None = None
    AllowedOAuthScopes: list[str] | None = None
    AllowedOAuthFlowsUserPoolClient: bool | None = None
    AnalyticsConfiguration: Document | None = None
    PreventUserExistenceErrors: Literal["ENABLED", "LEGACY"] | None = None
    EnableTokenRevocation: bool | None = None
    EnablePropagateAdditionalUserContextData: bool | None = None
    AuthSessionValidity: Annotated[int, Field(ge=3, le=15)] | None = None

    def settings(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"UserPoolId", "ClientId", "GenerateSecret"})


class CreateClientIn(ClientSettingsIn):
    UserPoolId: UserPoolId
    GenerateSecret: bool = False


class UpdateClientIn(ClientSettingsIn):
    UserPoolId: UserPoolId
    ClientId: ClientId
    ClientName: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None  # type: ignore[assignment]


class ClientIdIn(Input):
    UserPoolId: UserPoolId
    ClientId: ClientId


class ListClientsIn(Input):
    UserPoolId: UserPoolId
    MaxResults: Annotated[int, Field(ge=1, le=60)] | None = None
    NextToken: Token | None = None


class CreateGroupIn(Input):
    GroupName: GroupName
    UserPoolId: UserPoolId
    Description: Annotated[str, StringConstraints(max_length=2048)] | None = None
    RoleArn: Annotated[str, StringConstraints(min_length=20, max_length=2048)] | None = None
    #: AWS's PrecedenceType: a non-negative Java Integer (unbounded, a number past 64 bits failed to be stored)
    Precedence: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


class GroupIn(Input):
    GroupName: GroupName
    UserPoolId: UserPoolId


class ListGroupsIn(Input):
    UserPoolId: UserPoolId
    Limit: Annotated[int, Field(ge=0, le=60)] | None = None
    NextToken: Token | None = None


# --- outputs ---------------------------------------------------------------------------------------------------------


class Empty(TypedDict):
    pass


class UserPoolOut(TypedDict):
    UserPool: dict[str, Any]


class PoolSummary(TypedDict):
    Id: str
    Name: str
    LastModifiedDate: float
    CreationDate: float
    LambdaConfig: dict[str, Any]


class ListUserPoolsOut(TypedDict):
    UserPools: list[PoolSummary]
    NextToken: NotRequired[str]


class ClientOut(TypedDict):
    UserPoolClient: dict[str, Any]


class ClientSummary(TypedDict):
    ClientId: str
    UserPoolId: str
    ClientName: str


class ListClientsOut(TypedDict):
    UserPoolClients: list[ClientSummary]
    NextToken: NotRequired[str]


class GroupOut(TypedDict):
    Group: dict[str, Any]


class ListGroupsOut(TypedDict):
    Groups: list[dict[str, Any]]
    NextToken: NotRequired[str]


# --- pools -----------------------------------------------------------------------------------------------------------


async def create_user_pool(services: Services, call: Call[UserPoolSpec]) -> UserPoolOut:
    return {"UserPool": (await services.userpools.create_pool(call.given)).wire()}


async def describe_user_pool(services: Services, call: Call[PoolIdIn]) -> UserPoolOut:
    return {"UserPool": (await services.userpools.describe_pool(call.given.UserPoolId)).wire()}


async def update_user_pool(services: Services, call: Call[UpdateUserPoolIn]) -> Empty:
    settings = UserPoolSettings.model_validate(call.given.model_dump(exclude={"UserPoolId"}, exclude_none=True))
    await services.userpools.update_pool(call.given.UserPoolId, settings)
    return {}


async def delete_user_pool(services: Services, call: Call[PoolIdIn]) -> Empty:
    await services.userpools.delete_pool(call.given.UserPoolId)
    return {}


async def list_user_pools(services: Services, call: Call[ListUserPoolsIn]) -> ListUserPoolsOut:
    given, signer = call.given, services.signer
    after = str(signer.open("ListUserPools", given.NextToken, name="NextToken")["a"]) if given.NextToken else None
    pools = await services.userpools.pools(after=after, limit=given.MaxResults + 1)
    shown = pools[: given.MaxResults]
    output: ListUserPoolsOut = {
        "UserPools": [
            {
                "Id": pool.Id,
                "Name": pool.Name,
                "LastModifiedDate": pool.LastModifiedDate,
                "CreationDate": pool.CreationDate,
                "LambdaConfig": pool.LambdaConfig or {},
            }
            for pool in shown
        ]
    }
    if len(pools) > given.MaxResults:
        output["NextToken"] = signer.seal("ListUserPools", {"a": shown[-1].Id})
    return output


# --- app clients -----------------------------------------------------------------------------------------------------


async def create_user_pool_client(services: Services, call: Call[CreateClientIn]) -> ClientOut:
    given = call.given
    client = await services.userpools.create_client(
        given.UserPoolId, given.settings(), generate_secret=given.GenerateSecret
    )
    return {"UserPoolClient": client.wire()}


async def describe_user_pool_client(services: Services, call: Call[ClientIdIn]) -> ClientOut:
    return {"UserPoolClient": (await services.userpools.client(call.given.UserPoolId, call.given.ClientId)).wire()}


async def update_user_pool_client(services: Services, call: Call[UpdateClientIn]) -> ClientOut:
    given = call.given
    current = await services.userpools.client(given.UserPoolId, given.ClientId)
    settings = {"ClientName": current.ClientName, **given.settings()}
    return {
        "UserPoolClient": (await services.userpools.update_client(given.UserPoolId, given.ClientId, settings)).wire()
    }


async def delete_user_pool_client(services: Services, call: Call[ClientIdIn]) -> Empty:
    await services.userpools.delete_client(call.given.UserPoolId, call.given.ClientId)
    return {}


def _offset(services: Services, purpose: str, pool_id: str, token: str | None, name: str) -> int:
    if token is None:
        return 0
    claims = services.signer.open(purpose, token, name=name)
    if claims.get("p") != pool_id:
        raise InvalidParameterError(f"{name} not valid for these inputs")
    return int(claims["o"])


async def list_user_pool_clients(services: Services, call: Call[ListClientsIn]) -> ListClientsOut:
    given = call.given
    start, size = (
        _offset(services, "ListUserPoolClients", given.UserPoolId, given.NextToken, "NextToken"),
        given.MaxResults or 60,
    )
    clients = await services.userpools.clients(given.UserPoolId)
    output: ListClientsOut = {
        "UserPoolClients": [
            {"ClientId": c.ClientId, "UserPoolId": c.UserPoolId, "ClientName": c.ClientName}
            for c in clients[start : start + size]
        ]
    }
    if start + size < len(clients):
        output["NextToken"] = services.signer.seal("ListUserPoolClients", {"p": given.UserPoolId, "o": start + size})
    return output


# --- groups ----------------------------------------------------------------------------------------------------------


async def create_group(services: Services, call: Call[CreateGroupIn]) -> GroupOut:
    given = call.given
    group = await services.userpools.create_group(
        given.UserPoolId,
        given.GroupName,
        description=given.Description,
        role_arn=given.RoleArn,
        precedence=given.Precedence,
    )
    return {"Group": group.wire()}


async def get_group(services: Services, call: Call[GroupIn]) -> GroupOut:
    return {"Group": (await services.userpools.group(call.given.UserPoolId, call.given.GroupName)).wire()}


async def list_groups(services: Services, call: Call[ListGroupsIn]) -> ListGroupsOut:
    given = call.given
    start, size = _offset(services, "ListGroups", given.UserPoolId, given.NextToken, "NextToken"), given.Limit or 60
    groups = await services.userpools.groups(given.UserPoolId)
    output: ListGroupsOut = {"Groups": [group.wire() for group in groups[start : start + size]]}
    if start + size < len(groups):
        output["NextToken"] = services.signer.seal("ListGroups", {"p": given.UserPoolId, "o": start + size})
    return output


OPERATIONS: list[Operation[Any]] = [
    Operation("CreateUserPool", UserPoolSpec, UserPoolOut, DEVELOPER, create_user_pool),
    Operation("DescribeUserPool", PoolIdIn, UserPoolOut, DEVELOPER, describe_user_pool),
    Operation("UpdateUserPool", UpdateUserPoolIn, Empty, DEVELOPER, update_user_pool),
    Operation("DeleteUserPool", PoolIdIn, Empty, DEVELOPER, delete_user_pool),
    Operation("ListUserPools", ListUserPoolsIn, ListUserPoolsOut, DEVELOPER, list_user_pools),
    Operation("CreateUserPoolClient", CreateClientIn, ClientOut, DEVELOPER, create_user_pool_client),
    Operation("DescribeUserPoolClient", ClientIdIn, ClientOut, DEVELOPER, describe_user_pool_client),
    Operation("UpdateUserPoolClient", UpdateClientIn, ClientOut, DEVELOPER, update_user_pool_client),
    Operation("DeleteUserPoolClient", ClientIdIn, Empty, DEVELOPER, delete_user_pool_client),
    Operation("ListUserPoolClients", ListClientsIn, ListClientsOut, DEVELOPER, list_user_pool_clients),
    Operation("CreateGroup", CreateGroupIn, GroupOut, DEVELOPER, create_group),
    Operation("GetGroup", GroupIn, GroupOut, DEVELOPER, get_group),
    Operation("ListGroups", ListGroupsIn, ListGroupsOut, DEVELOPER, list_groups),
    *users.OPERATIONS,
]
