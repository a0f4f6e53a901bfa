"""Cognito user pools' sign-in operations (json 1.1, ``AWSCognitoIdentityProviderService.<Op>``).

InitiateAuth, RespondToAuthChallenge, GetUser, ChangePassword, GlobalSignOut and RevokeToken are public, as AWS
serves them (the body carries what authenticates: a password, an SRP proof, an access or refresh token);
AdminInitiateAuth and AdminRespondToAuthChallenge need developer credentials. Each row runs
:class:`~syncsvc.userpools.signin.SignIn`.

TOTP MFA (``syncsvc.userpools.mfa``): AssociateSoftwareToken, VerifySoftwareToken (an access token or an MFA_SETUP
Session) and SetUserMFAPreference are public; AdminSetUserMFAPreference, SetUserPoolMfaConfig and
GetUserPoolMfaConfig need developer credentials.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, StringConstraints
from typing_extensions import TypedDict

from syncsvc.access import Access
from syncsvc.api.operations import Call, Operation
from syncsvc.errors import InvalidParameterError
from syncsvc.runtime import Services
from syncsvc.userpools.mfa import settings_of
from syncsvc.userpools.model import ClientId, UserPoolId

Text = Annotated[str, StringConstraints(max_length=131072)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=131072, pattern=r"^[A-Za-z0-9\-_=.]+$")]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
SessionText = Annotated[str, StringConstraints(min_length=20, max_length=2048)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\p{L}\p{M}\p{S}\p{N}\p{P}]+$")]
SecretText = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w+]+$")]
AuthFlowName = Literal[
    "USER_SRP_AUTH",
    "REFRESH_TOKEN_AUTH",
    "REFRESH_TOKEN",
    "CUSTOM_AUTH",
    "ADMIN_NO_SRP_AUTH",
    "USER_PASSWORD_AUTH",
    "ADMIN_USER_PASSWORD_AUTH",
    "USER_AUTH",
]
ChallengeNameType = Literal[
    "SMS_MFA",
    "EMAIL_OTP",
    "SOFTWARE_TOKEN_MFA",
    "SELECT_MFA_TYPE",
    "MFA_SETUP",
    "PASSWORD_VERIFIER",
    "CUSTOM_CHALLENGE",
    "SELECT_CHALLENGE",
    "DEVICE_SRP_AUTH",
    "DEVICE_PASSWORD_VERIFIER",
    "ADMIN_NO_SRP_AUTH",
    "NEW_PASSWORD_REQUIRED",
    "SMS_OTP",
    "PASSWORD",
    "WEB_AUTHN",
    "PASSWORD_SRP",
]
Parameters = dict[Annotated[str, StringConstraints(min_length=1, max_length=131072)], Text]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _AuthIn(Input):
    AuthFlow: AuthFlowName
    ClientId: ClientId
    AuthParameters: Parameters | None = None
    ClientMetadata: dict[str, str] | None = None
    AnalyticsMetadata: dict[str, Any] | None = None
    Session: SessionText | None = None


class InitiateAuthIn(_AuthIn):
    UserContextData: dict[str, Any] | None = None


class AdminInitiateAuthIn(_AuthIn):
    UserPoolId: UserPoolId
    ContextData: dict[str, Any] | None = None


class _ChallengeIn(Input):
    ClientId: ClientId
    ChallengeName: ChallengeNameType
    Session: SessionText | None = None
    ChallengeResponses: Parameters | None = None
    ClientMetadata: dict[str, str] | None = None
    AnalyticsMetadata: dict[str, Any] | None = None


class RespondToAuthChallengeIn(_ChallengeIn):
    UserContextData: dict[str, Any] | None = None


class AdminRespondToAuthChallengeIn(_ChallengeIn):
    UserPoolId: UserPoolId
    ContextData: dict[str, Any] | None = None


class AccessTokenIn(Input):
    AccessToken: Token


class ChangePasswordIn(AccessTokenIn):
    PreviousPassword: Password | None = None
    ProposedPassword: Password


class RevokeTokenIn(Input):
    Token: Token
    ClientId: ClientId
    ClientSecret: SecretText | None = None
    ClientMetadata: dict[str, str] | None = None


class _SessionOrTokenIn(Input):
    AccessToken: Token | None = None
    Session: SessionText | None = None


class AssociateSoftwareTokenIn(_SessionOrTokenIn):
    pass


class VerifySoftwareTokenIn(_SessionOrTokenIn):
    UserCode: Annotated[str, StringConstraints(min_length=6, max_length=6, pattern=r"^[0-9]+$")]
    FriendlyDeviceName: Annotated[str, StringConstraints(max_length=131072)] | None = None


class MfaSettingsIn(Input):
    Enabled: bool | None = None
    PreferredMfa: bool | None = None


class _MfaPreferenceIn(Input):
    SMSMfaSettings: MfaSettingsIn | None = None
    SoftwareTokenMfaSettings: MfaSettingsIn | None = None
    EmailMfaSettings: MfaSettingsIn | None = None


class SetUserMfaPreferenceIn(_MfaPreferenceIn):
    AccessToken: Token


class AdminSetUserMfaPreferenceIn(_MfaPreferenceIn):
    UserPoolId: UserPoolId
    Username: Username


class SoftwareTokenMfaConfigIn(Input):
    Enabled: bool | None = None


class SetUserPoolMfaConfigIn(Input):
    UserPoolId: UserPoolId
    SoftwareTokenMfaConfiguration: SoftwareTokenMfaConfigIn | None = None
    SmsMfaConfiguration: dict[str, Any] | None = None
    EmailMfaConfiguration: dict[str, Any] | None = None
    WebAuthnConfiguration: dict[str, Any] | None = None
    MfaConfiguration: Literal["OFF", "ON", "OPTIONAL"] | None = None


class UserPoolIdIn(Input):
    UserPoolId: UserPoolId


# --- outputs ---------------------------------------------------------------------------------------------------------


class Empty(TypedDict):
    pass


class AuthenticationResultOut(TypedDict):
    AccessToken: str
    ExpiresIn: int
    TokenType: str
    IdToken: str
    RefreshToken: NotRequired[str]


class AuthOut(TypedDict):
    """Tokens, or a challenge to answer with RespondToAuthChallenge (its name, Session and parameters)."""

    ChallengeName: NotRequired[str]
    Session: NotRequired[str]
    ChallengeParameters: dict[str, str]
    AuthenticationResult: NotRequired[AuthenticationResultOut]


class AttributeOut(TypedDict):
    Name: str
    Value: str


class GetUserOut(TypedDict):
    Username: str
    UserAttributes: list[AttributeOut]
    UserMFASettingList: NotRequired[list[str]]
    PreferredMfaSetting: NotRequired[str]


class AssociateSoftwareTokenOut(TypedDict):
    SecretCode: str
    Session: NotRequired[str]


class VerifySoftwareTokenOut(TypedDict):
    Status: Literal["SUCCESS", "ERROR"]
    Session: NotRequired[str]


class SoftwareTokenMfaConfigOut(TypedDict):
    Enabled: bool


class UserPoolMfaConfigOut(TypedDict):
    SoftwareTokenMfaConfiguration: SoftwareTokenMfaConfigOut
    MfaConfiguration: str


# --- run functions ---------------------------------------------------------------------------------------------------


async def initiate_auth(services: Services, call: Call[InitiateAuthIn]) -> dict[str, Any]:
    given = call.given
    result = await services.signin.initiate(given.ClientId, given.AuthFlow, given.AuthParameters or {})
    return result.wire()


async def admin_initiate_auth(services: Services, call: Call[AdminInitiateAuthIn]) -> dict[str, Any]:
    given = call.given
    result = await services.signin.initiate(
        given.ClientId, given.AuthFlow, given.AuthParameters or {}, admin_pool_id=given.UserPoolId
    )
    return result.wire()


async def respond_to_auth_challenge(services: Services, call: Call[RespondToAuthChallengeIn]) -> dict[str, Any]:
    given = call.given
    result = await services.signin.respond(
        given.ClientId, given.ChallengeName, given.Session, given.ChallengeResponses or {}
    )
    return result.wire()


async def admin_respond_to_auth_challenge(
    services: Services, call: Call[AdminRespondToAuthChallengeIn]
) -> dict[str, Any]:
    given = call.given
    result = await services.signin.respond(
        given.ClientId,
        given.ChallengeName,
        given.Session,
        given.ChallengeResponses or {},
        admin_pool_id=given.UserPoolId,
    )
    return result.wire()


async def get_user(services: Services, call: Call[AccessTokenIn]) -> GetUserOut:
    user = await services.signin.get_user(call.given.AccessToken)
    attributes: list[AttributeOut] = [{"Name": a["Name"], "Value": a["Value"]} for a in user.attribute_list()]
    out: GetUserOut = {"Username": user.username, "UserAttributes": attributes}
    mfa = settings_of(user)
    if mfa.setting_list:
        out["UserMFASettingList"] = mfa.setting_list
    if mfa.preferred_setting is not None:
        out["PreferredMfaSetting"] = mfa.preferred_setting
    return out


async def change_password(services: Services, call: Call[ChangePasswordIn]) -> Empty:
    given = call.given
    await services.signin.change_password(given.AccessToken, given.PreviousPassword or "", given.ProposedPassword)
    return {}


async def global_sign_out(services: Services, call: Call[AccessTokenIn]) -> Empty:
    await services.signin.global_sign_out(call.given.AccessToken)
    return {}


async def revoke_token(services: Services, call: Call[RevokeTokenIn]) -> Empty:
    given = call.given
    await services.signin.revoke_token(given.ClientId, given.Token, given.ClientSecret)
    return {}


async def associate_software_token(
    services: Services, call: Call[AssociateSoftwareTokenIn]
) -> AssociateSoftwareTokenOut:
    given = call.given
    secret, session = await services.signin.mfa_setup.associate(given.AccessToken, given.Session)
    out: AssociateSoftwareTokenOut = {"SecretCode": secret}
    if session is not None:
        out["Session"] = session
    return out


async def verify_software_token(services: Services, call: Call[VerifySoftwareTokenIn]) -> VerifySoftwareTokenOut:
    given = call.given
    session = await services.signin.mfa_setup.verify(
        given.AccessToken, given.Session, given.UserCode, given.FriendlyDeviceName
    )
    out: VerifySoftwareTokenOut = {"Status": "SUCCESS"}
    if session is not None:
        out["Session"] = session
    return out


def _software_token(given: _MfaPreferenceIn) -> MfaSettingsIn:
    if given.SMSMfaSettings is not None and (given.SMSMfaSettings.Enabled or given.SMSMfaSettings.PreferredMfa):
        raise InvalidParameterError("SMS MFA is not supported by syncsvc (only software token MFA).")
    if given.EmailMfaSettings is not None and (given.EmailMfaSettings.Enabled or given.EmailMfaSettings.PreferredMfa):
        raise InvalidParameterError("E-mail MFA is not supported by syncsvc (only software token MFA).")
    return given.SoftwareTokenMfaSettings or MfaSettingsIn()


async def set_user_mfa_preference(services: Services, call: Call[SetUserMfaPreferenceIn]) -> Empty:
    settings = _software_token(call.given)
    signed_in = await services.userpool_tokens.access(call.given.AccessToken)
    await services.signin.mfa.set_preference(
        signed_in.pool.Id, signed_in.user.username, enabled=settings.Enabled, preferred=settings.PreferredMfa
    )
    return {}


async def admin_set_user_mfa_preference(services: Services, call: Call[AdminSetUserMfaPreferenceIn]) -> Empty:
    settings = _software_token(call.given)
    await services.signin.mfa.set_preference(
        call.given.UserPoolId, call.given.Username, enabled=settings.Enabled, preferred=settings.PreferredMfa
    )
    return {}


def _mfa_config(configuration: str) -> UserPoolMfaConfigOut:
    return {
        "SoftwareTokenMfaConfiguration": {"Enabled": configuration != "OFF"},
        "MfaConfiguration": configuration,
    }


async def set_user_pool_mfa_config(services: Services, call: Call[SetUserPoolMfaConfigIn]) -> UserPoolMfaConfigOut:
    given = call.given
    if given.SmsMfaConfiguration or given.EmailMfaConfiguration or given.WebAuthnConfiguration:
        raise InvalidParameterError("Only software token MFA is supported by syncsvc.")
    software = given.SoftwareTokenMfaConfiguration.Enabled if given.SoftwareTokenMfaConfiguration else None
    configuration = await services.signin.mfa.set_pool_config(given.UserPoolId, given.MfaConfiguration, software)
    return _mfa_config(configuration)


async def get_user_pool_mfa_config(services: Services, call: Call[UserPoolIdIn]) -> UserPoolMfaConfigOut:
    return _mfa_config(await services.signin.mfa.pool_config(call.given.UserPoolId))


DEVELOPER, ANONYMOUS = Access.DEVELOPER, Access.ANONYMOUS
#: The sign-in rows of the ``cognito-idp`` surface (``syncsvc.api.userpools`` builds the surface).
OPERATIONS: list[Operation[Any]] = [
    Operation("InitiateAuth", InitiateAuthIn, AuthOut, ANONYMOUS, initiate_auth),
    Operation("AdminInitiateAuth", AdminInitiateAuthIn, AuthOut, DEVELOPER, admin_initiate_auth),
    Operation("RespondToAuthChallenge", RespondToAuthChallengeIn, AuthOut, ANONYMOUS, respond_to_auth_challenge),
    Operation(
        "AdminRespondToAuthChallenge",
        AdminRespondToAuthChallengeIn,
        AuthOut,
        DEVELOPER,
        admin_respond_to_auth_challenge,
    ),
    Operation("GetUser", AccessTokenIn, GetUserOut, ANONYMOUS, get_user),
    Operation("ChangePassword", ChangePasswordIn, Empty, ANONYMOUS, change_password),
    Operation("GlobalSignOut", AccessTokenIn, Empty, ANONYMOUS, global_sign_out),
    Operation("RevokeToken", RevokeTokenIn, Empty, ANONYMOUS, revoke_token),
    Operation(
        "AssociateSoftwareToken",
        AssociateSoftwareTokenIn,
        AssociateSoftwareTokenOut,
        ANONYMOUS,
        associate_software_token,
    ),
    Operation("VerifySoftwareToken", VerifySoftwareTokenIn, VerifySoftwareTokenOut, ANONYMOUS, verify_software_token),
    Operation("SetUserMFAPreference", SetUserMfaPreferenceIn, Empty, ANONYMOUS, set_user_mfa_preference),
    Operation(
        "AdminSetUserMFAPreference", AdminSetUserMfaPreferenceIn, Empty, DEVELOPER, admin_set_user_mfa_preference
    ),
    Operation(
        "SetUserPoolMfaConfig", SetUserPoolMfaConfigIn, UserPoolMfaConfigOut, DEVELOPER, set_user_pool_mfa_config
    ),
    Operation("GetUserPoolMfaConfig", UserPoolIdIn, UserPoolMfaConfigOut, DEVELOPER, get_user_pool_mfa_config),
]
