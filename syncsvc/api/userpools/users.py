"""Cognito user pools' user operations: sign-up, confirmation, forgotten passwords (public, as AWS serves them)
and the Admin* user operations, ListUsers and group membership (developer credentials).

Rows run :class:`~syncsvc.userpools.accounts.Accounts` (flows with codes) and
:class:`~syncsvc.userpools.directory.UserDirectory`.

(About 420 lines: one wire model and one short run function per user operation; self-service ones are in
self_service.py.)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict

from syncsvc.access import Access
from syncsvc.api.operations import Call, Operation
from syncsvc.errors import InvalidParameterError
from syncsvc.runtime import Services
from syncsvc.userpools.filters import UserFilter
from syncsvc.userpools.mfa import settings_of
from syncsvc.userpools.model import STANDARD_ATTRIBUTES, ClientId, User, UserPoolId, seconds

UsernameText = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\p{L}\p{M}\p{S}\p{N}\p{P}]+$")
]
PasswordText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
CodeText = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^[\S]+$")]
SecretHashText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w+=/]+$")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=131072)]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
DEVELOPER, ANONYMOUS = Access.DEVELOPER, Access.ANONYMOUS
#: Attributes a caller may not set: Cognito keeps them.
_READ_ONLY = frozenset({"sub", "updated_at", "cognito:username", "cognito:user_status"})


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AttributeIn(Input):
    Name: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[\p{L}\p{M}\p{S}\p{N}\p{P}]+$")]
    Value: Annotated[str, StringConstraints(max_length=2048)] | None = None


Attributes = Annotated[list[AttributeIn], Field(max_length=100)]


def attribute_map(given: list[AttributeIn] | None) -> dict[str, str]:
    """The attributes as a map; InvalidParameterException for one the schema does not have or that is read-only."""
    return {checked_name(attribute.Name): attribute.Value or "" for attribute in given or ()}


def checked_name(name: str) -> str:
    """``name`` if a caller may set or delete the attribute (standard or ``custom:*``, not read-only)."""
    if name in _READ_ONLY or (name not in STANDARD_ATTRIBUTES and not name.startswith("custom:")):
        raise InvalidParameterError(
            f"Attributes did not conform to the schema: {name}: Attribute does not exist in the schema."
        )
    return name


class ClientCallIn(Input):
    ClientId: ClientId
    SecretHash: SecretHashText | None = None
    AnalyticsMetadata: dict[str, Any] | None = None
    UserContextData: dict[str, Any] | None = None
    ClientMetadata: dict[str, str] | None = None


class SignUpIn(ClientCallIn):
    Username: UsernameText
    Password: PasswordText
    UserAttributes: Attributes | None = None
    ValidationData: Attributes | None = None


class ConfirmSignUpIn(ClientCallIn):
    Username: UsernameText
    ConfirmationCode: CodeText
    ForceAliasCreation: bool | None = None
    Session: Token | None = None


class UsernameCallIn(ClientCallIn):
    Username: UsernameText


class ConfirmForgotPasswordIn(ClientCallIn):
    Username: UsernameText
    ConfirmationCode: CodeText
    Password: PasswordText


class AdminUserIn(Input):
    UserPoolId: UserPoolId
    Username: UsernameText


class AdminCreateUserIn(AdminUserIn):
    UserAttributes: Attributes | None = None
    ValidationData: Attributes | None = None
    TemporaryPassword: PasswordText | None = None
    ForceAliasCreation: bool | None = None
    MessageAction: Literal["RESEND", "SUPPRESS"] | None = None
    DesiredDeliveryMediums: list[Literal["SMS", "EMAIL"]] | None = None
    ClientMetadata: dict[str, str] | None = None


class AdminSetUserPasswordIn(AdminUserIn):
    Password: PasswordText
    Permanent: bool = False


class AdminUpdateAttributesIn(AdminUserIn):
    UserAttributes: Attributes
    ClientMetadata: dict[str, str] | None = None


class AdminConfirmIn(AdminUserIn):
    ClientMetadata: dict[str, str] | None = None


class ListUsersIn(Input):
    UserPoolId: UserPoolId
    AttributesToGet: list[str] | None = None
    Limit: Annotated[int, Field(ge=0, le=60)] | None = None
    PaginationToken: Token | None = None
    Filter: Annotated[str, StringConstraints(max_length=256)] | None = None


class MembershipIn(AdminUserIn):
    GroupName: GroupName


class GroupsForUserIn(AdminUserIn):
    Limit: Annotated[int, Field(ge=0, le=60)] | None = None
    NextToken: Token | None = None


# --- outputs ---------------------------------------------------------------------------------------------------------


class Empty(TypedDict):
    pass


class Delivery(TypedDict):
    Destination: str
    DeliveryMedium: str
    AttributeName: str


class SignUpOut(TypedDict):
    UserConfirmed: bool
    UserSub: str
    CodeDeliveryDetails: NotRequired[Delivery]


class DeliveryOut(TypedDict):
    CodeDeliveryDetails: Delivery


class UserOut(TypedDict):
    Username: str
    Attributes: list[dict[str, str]]
    UserCreateDate: float
    UserLastModifiedDate: float
    Enabled: bool
    UserStatus: str


class AdminCreateUserOut(TypedDict):
    User: UserOut


class AdminGetUserOut(TypedDict):
    Username: str
    UserAttributes: list[dict[str, str]]
    UserCreateDate: float
    UserLastModifiedDate: float
    Enabled: bool
    UserStatus: str
    UserMFASettingList: NotRequired[list[str]]
    PreferredMfaSetting: NotRequired[str]


class ListUsersOut(TypedDict):
    Users: list[UserOut]
    PaginationToken: NotRequired[str]


class GroupsOut(TypedDict):
    Groups: list[dict[str, Any]]
    NextToken: NotRequired[str]


def user_out(user: User, only: list[str] | None = None) -> UserOut:
    attributes = user.attribute_list()
    if only is not None:
        attributes = [a for a in attributes if a["Name"] in only]
    return {
        "Username": user.username,
        "Attributes": attributes,
        "UserCreateDate": seconds(user.created_ms),
        "UserLastModifiedDate": seconds(user.modified_ms),
        "Enabled": user.enabled,
        "UserStatus": user.status.value,
    }


# --- public ----------------------------------------------------------------------------------------------------------


async def sign_up(services: Services, call: Call[SignUpIn]) -> SignUpOut:
    given = call.given
    user, delivery = await services.user_accounts.sign_up(
        given.ClientId,
        given.Username,
        given.Password,
        attribute_map(given.UserAttributes),
        given.SecretHash,
        validation_data=_validation_data(given.ValidationData),
        client_metadata=given.ClientMetadata,
    )
    output: SignUpOut = {"UserConfirmed": user.confirmed, "UserSub": user.sub}
    if delivery is not None:
        output["CodeDeliveryDetails"] = delivery.wire()  # type: ignore[typeddict-item]
    return output


async def confirm_sign_up(services: Services, call: Call[ConfirmSignUpIn]) -> Empty:
    given = call.given
    await services.user_accounts.confirm_sign_up(
        given.ClientId, given.Username, given.ConfirmationCode, given.SecretHash, client_metadata=given.ClientMetadata
    )
    return {}


async def resend_confirmation_code(services: Services, call: Call[UsernameCallIn]) -> DeliveryOut:
    given = call.given
    delivery = await services.user_accounts.resend_confirmation(given.ClientId, given.Username, given.SecretHash)
    return {"CodeDeliveryDetails": delivery.wire()}  # type: ignore[typeddict-item]


async def forgot_password(services: Services, call: Call[UsernameCallIn]) -> DeliveryOut:
    given = call.given
    delivery = await services.user_accounts.forgot_password(given.ClientId, given.Username, given.SecretHash)
    return {"CodeDeliveryDetails": delivery.wire()}  # type: ignore[typeddict-item]


async def confirm_forgot_password(services: Services, call: Call[ConfirmForgotPasswordIn]) -> Empty:
    given = call.given
    await services.user_accounts.confirm_forgot_password(
        given.ClientId,
        given.Username,
        given.ConfirmationCode,
        given.Password,
        given.SecretHash,
        client_metadata=given.ClientMetadata,
    )
    return {}


def _validation_data(given: list[AttributeIn] | None) -> dict[str, str]:
    """ValidationData for the PreSignUp trigger: any names (not schema attributes), as given."""
    return {item.Name: item.Value or "" for item in given or ()}


# --- admin -----------------------------------------------------------------------------------------------------------


async def admin_create_user(services: Services, call: Call[AdminCreateUserIn]) -> AdminCreateUserOut:
    given = call.given
    user = await services.user_accounts.admin_create_user(
        given.UserPoolId,
        given.Username,
        attribute_map(given.UserAttributes),
        temporary_password=given.TemporaryPassword,
        message_action=given.MessageAction,
        mediums=list(given.DesiredDeliveryMediums or ["SMS"]),
        validation_data=_validation_data(given.ValidationData),
        client_metadata=given.ClientMetadata,
    )
    return {"User": user_out(user)}


async def admin_get_user(services: Services, call: Call[AdminUserIn]) -> AdminGetUserOut:
    user = await services.userpools.user(call.given.UserPoolId, call.given.Username)
    out = user_out(user)
    answer: AdminGetUserOut = {
        "Username": out["Username"],
        "UserAttributes": out["Attributes"],
        "UserCreateDate": out["UserCreateDate"],
        "UserLastModifiedDate": out["UserLastModifiedDate"],
        "Enabled": out["Enabled"],
        "UserStatus": out["UserStatus"],
    }
    mfa = settings_of(user)
    if mfa.setting_list:
        answer["UserMFASettingList"] = mfa.setting_list
    if mfa.preferred_setting is not None:
        answer["PreferredMfaSetting"] = mfa.preferred_setting
    return answer


async def admin_delete_user(services: Services, call: Call[AdminUserIn]) -> Empty:
    await services.userpools.delete_user(call.given.UserPoolId, call.given.Username)
    return {}


async def _set_enabled(services: Services, given: AdminUserIn, enabled: bool) -> Empty:
    await services.userpools.set_enabled(given.UserPoolId, given.Username, enabled=enabled)
    return {}


async def admin_disable_user(services: Services, call: Call[AdminUserIn]) -> Empty:
    return await _set_enabled(services, call.given, False)


async def admin_enable_user(services: Services, call: Call[AdminUserIn]) -> Empty:
    return await _set_enabled(services, call.given, True)


async def admin_confirm_sign_up(services: Services, call: Call[AdminConfirmIn]) -> Empty:
    given = call.given
    await services.user_accounts.admin_confirm(given.UserPoolId, given.Username, client_metadata=given.ClientMetadata)
    return {}


async def admin_set_user_password(services: Services, call: Call[AdminSetUserPasswordIn]) -> Empty:
    given = call.given
    await services.userpools.set_password(given.UserPoolId, given.Username, given.Password, permanent=given.Permanent)
    return {}


async def admin_user_global_sign_out(services: Services, call: Call[AdminUserIn]) -> Empty:
    await services.userpools.sign_out_everywhere(call.given.UserPoolId, call.given.Username)
    return {}


async def admin_update_user_attributes(services: Services, call: Call[AdminUpdateAttributesIn]) -> Empty:
    given = call.given
    await services.userpools.update_attributes(given.UserPoolId, given.Username, attribute_map(given.UserAttributes))
    return {}


async def list_users(services: Services, call: Call[ListUsersIn]) -> ListUsersOut:
    """Users in username order, filtered; a page scans at most 1,000 stored users (then answers a token to go on)."""
    given, signer = call.given, services.signer
    chosen = UserFilter.parse(given.Filter or "")
    await services.userpools.pool(given.UserPoolId)
    after = None
    if given.PaginationToken:
        claims = signer.open("ListUsers", given.PaginationToken, name="PaginationToken")
        if claims.get("p") != given.UserPoolId or claims.get("f") != (given.Filter or ""):
            raise InvalidParameterError("PaginationToken not valid for these inputs")
        after = str(claims["a"])
    limit, scanned = given.Limit or 60, 0
    found: list[User] = []
    more = True
    while len(found) < limit and scanned < 1000:
        batch = await services.userpools.page_users(given.UserPoolId, after=after, limit=100)
        if not batch:
            more = False
            break
        for user in batch:
            after, scanned = user.username, scanned + 1
            if chosen is None or chosen.matches(user):
                found.append(user)
                if len(found) == limit:
                    break
    output: ListUsersOut = {"Users": [user_out(user, given.AttributesToGet) for user in found]}
    if more and after is not None and (len(found) == limit or scanned >= 1000):
        output["PaginationToken"] = signer.seal(
            "ListUsers", {"p": given.UserPoolId, "f": given.Filter or "", "a": after}
        )
    return output


async def admin_add_user_to_group(services: Services, call: Call[MembershipIn]) -> Empty:
    given = call.given
    await services.userpools.set_membership(given.UserPoolId, given.GroupName, given.Username, member=True)
    return {}


async def admin_remove_user_from_group(services: Services, call: Call[MembershipIn]) -> Empty:
    given = call.given
    await services.userpools.set_membership(given.UserPoolId, given.GroupName, given.Username, member=False)
    return {}


async def admin_list_groups_for_user(services: Services, call: Call[GroupsForUserIn]) -> GroupsOut:
    given, directory = call.given, services.userpools
    user = await directory.user(given.UserPoolId, given.Username)
    names = await directory.groups_of(given.UserPoolId, user.username)
    groups = [await directory.group(given.UserPoolId, name) for name in names]
    return {"Groups": [group.wire() for group in groups]}


OPERATIONS: list[Operation[Any]] = [
    Operation("SignUp", SignUpIn, SignUpOut, ANONYMOUS, sign_up),
    Operation("ConfirmSignUp", ConfirmSignUpIn, Empty, ANONYMOUS, confirm_sign_up),
    Operation("ResendConfirmationCode", UsernameCallIn, DeliveryOut, ANONYMOUS, resend_confirmation_code),
    Operation("ForgotPassword", UsernameCallIn, DeliveryOut, ANONYMOUS, forgot_password),
    Operation("ConfirmForgotPassword", ConfirmForgotPasswordIn, Empty, ANONYMOUS, confirm_forgot_password),
    Operation("AdminCreateUser", AdminCreateUserIn, AdminCreateUserOut, DEVELOPER, admin_create_user),
    Operation("AdminGetUser", AdminUserIn, AdminGetUserOut, DEVELOPER, admin_get_user),
    Operation("AdminDeleteUser", AdminUserIn, Empty, DEVELOPER, admin_delete_user),
    Operation("AdminDisableUser", AdminUserIn, Empty, DEVELOPER, admin_disable_user),
    Operation("AdminEnableUser", AdminUserIn, Empty, DEVELOPER, admin_enable_user),
    Operation("AdminConfirmSignUp", AdminConfirmIn, Empty, DEVELOPER, admin_confirm_sign_up),
    Operation("AdminSetUserPassword", AdminSetUserPasswordIn, Empty, DEVELOPER, admin_set_user_password),
    Operation("AdminUserGlobalSignOut", AdminUserIn, Empty, DEVELOPER, admin_user_global_sign_out),
    Operation("AdminUpdateUserAttributes", AdminUpdateAttributesIn, Empty, DEVELOPER, admin_update_user_attributes),
    Operation("ListUsers", ListUsersIn, ListUsersOut, DEVELOPER, list_users),
    Operation("AdminAddUserToGroup", MembershipIn, Empty, DEVELOPER, admin_add_user_to_group),
    Operation("AdminRemoveUserFromGroup", MembershipIn, Empty, DEVELOPER, admin_remove_user_from_group),
    Operation("AdminListGroupsForUser", GroupsForUserIn, GroupsOut, DEVELOPER, admin_list_groups_for_user),
]
