"""Cognito user pools' self-service operations: what a signed-in user does to its own account with the access token
in the body (UpdateUserAttributes, GetUserAttributeVerificationCode, VerifyUserAttribute, DeleteUserAttributes,
DeleteUser — public, as AWS serves them), and the administrator's AdminDeleteUserAttributes and
AdminResetUserPassword (developer credentials).

The access token is verified as GetUser verifies it (``UserPoolTokens.access``: our signature, not expired, its
sign-in not revoked, the user not signed out since, enabled, the same ``sub``); the account it names is the only one
these operations touch. Rules Cognito keeps:

* A user may not mark its own e-mail address or phone number verified (``*_verified``): only a code does that
  (VerifyUserAttribute) or an administrator (AdminUpdateUserAttributes).
* A changed e-mail address or phone number is no longer verified; when the pool auto-verifies it
  (AutoVerifiedAttributes) a code goes to the new value and UpdateUserAttributes answers where
  (CodeDeliveryDetailsList). An attribute given with an empty value is deleted. The app client's WriteAttributes,
  when set, bound what the user may write.
* A verification code is bound to the attribute and its value when it was sent (``Accounts.verify_attribute``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict

from syncsvc.access import Access
from syncsvc.api.operations import Call, Operation
from syncsvc.api.userpools.users import AdminUserIn, Attributes, CodeText, Delivery, attribute_map, checked_name
from syncsvc.errors import InvalidParameterError, UserPoolNotAuthorizedError
from syncsvc.runtime import Services
from syncsvc.userpools.tokens import SignedIn

AccessToken = Annotated[str, StringConstraints(min_length=1, max_length=131072, pattern=r"^[A-Za-z0-9\-_=.]+$")]
AttributeName = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[\p{L}\p{M}\p{S}\p{N}\p{P}]+$")
]
AttributeNames = Annotated[list[AttributeName], Field(min_length=1, max_length=100)]
#: Attributes a code can verify.
VERIFIABLE = ("email", "phone_number")
DEVELOPER, ANONYMOUS = Access.DEVELOPER, Access.ANONYMOUS


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AccessTokenIn(Input):
    AccessToken: AccessToken


class UpdateUserAttributesIn(AccessTokenIn):
    UserAttributes: Attributes
    ClientMetadata: dict[str, str] | None = None


class AttributeCodeIn(AccessTokenIn):
    AttributeName: AttributeName
    ClientMetadata: dict[str, str] | None = None


class VerifyUserAttributeIn(AccessTokenIn):
    AttributeName: AttributeName
    Code: CodeText


class DeleteUserAttributesIn(AccessTokenIn):
    UserAttributeNames: AttributeNames


class AdminDeleteUserAttributesIn(AdminUserIn):
    UserAttributeNames: AttributeNames


class AdminResetUserPasswordIn(AdminUserIn):
    ClientMetadata: dict[str, str] | None = None


class Empty(TypedDict):
    pass


class UpdateUserAttributesOut(TypedDict):
    CodeDeliveryDetailsList: list[Delivery]


class AttributeCodeOut(TypedDict):
    CodeDeliveryDetails: Delivery


async def _signed_in(services: Services, access_token: str) -> SignedIn:
    return await services.userpool_tokens.access(access_token)


def _delivery(wire: dict[str, str]) -> Delivery:
    return {
        "Destination": wire["Destination"],
        "DeliveryMedium": wire["DeliveryMedium"],
        "AttributeName": wire["AttributeName"],
    }


# --- public (the access token says whose account) -------------------------------------------------------------------


async def update_user_attributes(services: Services, call: Call[UpdateUserAttributesIn]) -> UpdateUserAttributesOut:
    given = call.given
    signed_in = await _signed_in(services, given.AccessToken)
    pool, client, user = signed_in.pool, signed_in.client, signed_in.user
    attributes = attribute_map(given.UserAttributes)
    for name in attributes:
        if name.endswith("_verified"):
            raise InvalidParameterError(f"Cannot modify the attribute {name}: only a verification code sets it.")
        if client.WriteAttributes is not None and name not in client.WriteAttributes:
            raise UserPoolNotAuthorizedError(f"A client attempted to write unauthorized attribute {name}")
    doomed = [name for name, value in attributes.items() if value == ""]
    kept = {name: value for name, value in attributes.items() if value != ""}
    directory = services.userpools
    updated = await directory.update_attributes(pool.Id, user.username, kept) if kept else user
    if doomed:
        updated = await directory.delete_attributes(pool.Id, user.username, doomed)
    sent: list[Delivery] = []
    for attribute in VERIFIABLE:
        changed = attribute in kept and kept[attribute] != user.attributes.get(attribute)
        if changed and attribute in (pool.AutoVerifiedAttributes or ()):
            delivery = await services.user_accounts.send_attribute_code(pool, updated, attribute)
            sent.append(_delivery(delivery.wire()))
    return {"CodeDeliveryDetailsList": sent}


async def get_user_attribute_verification_code(services: Services, call: Call[AttributeCodeIn]) -> AttributeCodeOut:
    given = call.given
    signed_in = await _signed_in(services, given.AccessToken)
    if given.AttributeName not in VERIFIABLE:
        raise InvalidParameterError(f"Only {' and '.join(VERIFIABLE)} can be verified.")
    delivery = await services.user_accounts.send_attribute_code(signed_in.pool, signed_in.user, given.AttributeName)
    return {"CodeDeliveryDetails": _delivery(delivery.wire())}


async def verify_user_attribute(services: Services, call: Call[VerifyUserAttributeIn]) -> Empty:
    given = call.given
    signed_in = await _signed_in(services, given.AccessToken)
    if given.AttributeName not in VERIFIABLE:
        raise InvalidParameterError(f"Only {' and '.join(VERIFIABLE)} can be verified.")
    await services.user_accounts.verify_attribute(signed_in.pool, signed_in.user, given.AttributeName, given.Code)
    return {}


async def delete_user_attributes(services: Services, call: Call[DeleteUserAttributesIn]) -> Empty:
    given = call.given
    signed_in = await _signed_in(services, given.AccessToken)
    names = [checked_name(name) for name in given.UserAttributeNames]
    await services.userpools.delete_attributes(signed_in.pool.Id, signed_in.user.username, names)
    return {}


async def delete_user(services: Services, call: Call[AccessTokenIn]) -> Empty:
    """DeleteUser: the account and with it every token of the user (each is checked against the stored user)."""
    signed_in = await _signed_in(services, call.given.AccessToken)
    await services.userpools.delete_user(signed_in.pool.Id, signed_in.user.username)
    return {}


# --- admin -----------------------------------------------------------------------------------------------------------


async def admin_delete_user_attributes(services: Services, call: Call[AdminDeleteUserAttributesIn]) -> Empty:
    given = call.given
    names = [checked_name(name) for name in given.UserAttributeNames]
    await services.userpools.delete_attributes(given.UserPoolId, given.Username, names)
    return {}


async def admin_reset_user_password(services: Services, call: Call[AdminResetUserPasswordIn]) -> Empty:
    await services.user_accounts.admin_reset_password(call.given.UserPoolId, call.given.Username)
    return {}


OPERATIONS: list[Operation[Any]] = [
    Operation(
        "UpdateUserAttributes", UpdateUserAttributesIn, UpdateUserAttributesOut, ANONYMOUS, update_user_attributes
    ),
    Operation(
        "GetUserAttributeVerificationCode",
        AttributeCodeIn,
        AttributeCodeOut,
        ANONYMOUS,
        get_user_attribute_verification_code,
    ),
    Operation("VerifyUserAttribute", VerifyUserAttributeIn, Empty, ANONYMOUS, verify_user_attribute),
    Operation("DeleteUserAttributes", DeleteUserAttributesIn, Empty, ANONYMOUS, delete_user_attributes),
    Operation("DeleteUser", AccessTokenIn, Empty, ANONYMOUS, delete_user),
    Operation("AdminDeleteUserAttributes", AdminDeleteUserAttributesIn, Empty, DEVELOPER, admin_delete_user_attributes),
    Operation("AdminResetUserPassword", AdminResetUserPasswordIn, Empty, DEVELOPER, admin_reset_user_password),
]
