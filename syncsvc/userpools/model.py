"""User pools' nouns: pools, app clients, users and code deliveries. No I/O.

A pool and an app client are kept as their wire shapes (pydantic models dumped to the store as JSON, as identity
pools are); a :class:`User` is a frozen dataclass whose secret members (password hash, SRP salt and verifier) only
live in memory in the clear: ``syncsvc.store.userpools`` seals the verifier and stores the argon2id hash, never a
password. Times inside the service are epoch milliseconds; the wire's epoch seconds come from :func:`seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from syncsvc.errors import InvalidParameterError

#: The integers a stored document may hold: a JSON number the store's encoder (orjson) writes, and AWS's Long.
_LONG = range(-(2**63), 2**63)


def _storable(document: dict[str, Any]) -> dict[str, Any]:
    """A free-form member (settings kept as given) must be storable as JSON: an integer past 64 bits is not."""
    pending: list[Any] = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, int) and not isinstance(value, bool) and value not in _LONG:
            raise ValueError("Member must not hold an integer outside the range of a 64-bit Long")
    return document


#: A member kept as the caller gave it (a JSON object of anything storable), for settings syncsvc does not act on.
Document = Annotated[dict[str, Any], AfterValidator(_storable)]
#: A user pool id: ``<region>_<9 letters and digits>`` (AWS: ``[\w-]+_[0-9a-zA-Z]+``).
USER_POOL_ID_PATTERN = r"[\w-]+_[0-9a-zA-Z]+"
#: An app client id: 26 lowercase letters and digits (AWS: ``[\w+]+``, 1-128).
CLIENT_ID_PATTERN = r"[\w+]+"
UserPoolId = Annotated[str, StringConstraints(min_length=1, max_length=55, pattern=rf"^{USER_POOL_ID_PATTERN}$")]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=rf"^{CLIENT_ID_PATTERN}$")]
#: The auth flows an app client may allow (``ExplicitAuthFlows``), with the legacy names AWS still accepts.
AuthFlow = Literal[
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_CUSTOM_AUTH",
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
    "ALLOW_USER_AUTH",
    "ADMIN_NO_SRP_AUTH",
    "CUSTOM_AUTH_FLOW_ONLY",
    "USER_PASSWORD_AUTH",
]
DEFAULT_AUTH_FLOWS: tuple[AuthFlow, ...] = ("ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
#: Standard attributes of a user (OpenID Connect's claims, as Cognito keeps them); ``custom:*`` ones are allowed too.
STANDARD_ATTRIBUTES = frozenset(
    {
        "address",
        "birthdate",
        "email",
        "email_verified",
        "family_name",
        "gender",
        "given_name",
        "locale",
        "middle_name",
        "name",
        "nickname",
        "phone_number",
        "phone_number_verified",
        "picture",
        "preferred_username",
        "profile",
        "sub",
        "updated_at",
        "website",
        "zoneinfo",
    }
)
Alias = Literal["email", "phone_number", "preferred_username"]


def seconds(ms: int) -> float:
    """Epoch milliseconds as the wire's epoch seconds."""
    return ms / 1000


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PasswordPolicyType(WireModel):
    MinimumLength: Annotated[int, Field(ge=6, le=99)] = 8
    RequireUppercase: bool = True
    RequireLowercase: bool = True
    RequireNumbers: bool = True
    RequireSymbols: bool = True
    PasswordHistorySize: Annotated[int, Field(ge=0, le=24)] | None = None
    TemporaryPasswordValidityDays: Annotated[int, Field(ge=0, le=365)] = 7


class UserPoolPolicies(WireModel):
    PasswordPolicy: PasswordPolicyType = Field(default_factory=PasswordPolicyType)
    SignInPolicy: Document | None = None


class AdminCreateUserConfigType(WireModel):
    AllowAdminCreateUserOnly: bool = False
    UnusedAccountValidityDays: Annotated[int, Field(ge=0, le=365)] | None = None
    InviteMessageTemplate: dict[str, str] | None = None


class SchemaAttribute(WireModel):
    Name: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    AttributeDataType: Literal["String", "Number", "DateTime", "Boolean"] | None = None
    DeveloperOnlyAttribute: bool | None = None
    Mutable: bool | None = None
    Required: bool | None = None
    NumberAttributeConstraints: dict[str, str] | None = None
    StringAttributeConstraints: dict[str, str] | None = None


PoolNameText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w\s+=,.@-]+$")]


class UserPoolSettings(WireModel):
    """What UpdateUserPool may change (and CreateUserPool sets). Members kept but not acted on yet (Lambda,
    SMS, e-mail templates, device tracking) are stored as given so Describe answers them back."""

    Policies: UserPoolPolicies = Field(default_factory=UserPoolPolicies)
    DeletionProtection: Literal["ACTIVE", "INACTIVE"] | None = None
    LambdaConfig: Document | None = None
    AutoVerifiedAttributes: list[Literal["email", "phone_number"]] | None = None
    SmsVerificationMessage: str | None = None
    EmailVerificationMessage: str | None = None
    EmailVerificationSubject: str | None = None
    VerificationMessageTemplate: Document | None = None
    SmsAuthenticationMessage: str | None = None
    UserAttributeUpdateSettings: Document | None = None
    MfaConfiguration: Literal["OFF", "ON", "OPTIONAL"] = "OFF"
    DeviceConfiguration: Document | None = None
    EmailConfiguration: Document | None = None
    SmsConfiguration: Document | None = None
    UserPoolTags: dict[str, str] | None = None
    AdminCreateUserConfig: AdminCreateUserConfigType = Field(default_factory=AdminCreateUserConfigType)
    UserPoolAddOns: Document | None = None
    AccountRecoverySetting: Document | None = None
    PoolName: PoolNameText | None = None
    UserPoolTier: Literal["LITE", "ESSENTIALS", "PLUS"] | None = None


#: LambdaConfig members acted on: the triggers syncsvc.userpools.hooks runs, and the key their senders would use.
LAMBDA_CONFIG_SERVED = ("PreSignUp", "PostConfirmation", "PreAuthentication", "PreTokenGeneration", "KMSKeyID")


def refuse_unserved(settings: UserPoolSettings) -> None:
    """InvalidParameterException for settings that would change who signs in, or what runs when, if syncsvc kept
    them without acting on them: a trigger it does not run (a PostAuthentication audit or a UserMigration that never
    happens is worse than a refusal), and case-insensitive usernames."""
    for member in (settings.LambdaConfig or {}).keys() - set(LAMBDA_CONFIG_SERVED):
        raise InvalidParameterError(
            f"LambdaConfig.{member} is not supported by syncsvc: the triggers it runs are PreSignUp, "
            "PostConfirmation, PreAuthentication and PreTokenGeneration"
        )
    configuration = getattr(settings, "UsernameConfiguration", None) or {}
    if configuration.get("CaseSensitive") is False:
        raise InvalidParameterError(
            "UsernameConfiguration.CaseSensitive false is not supported by syncsvc: usernames are case sensitive"
        )


class UserPoolSpec(UserPoolSettings):
    """CreateUserPool's input."""

    PoolName: PoolNameText
    AliasAttributes: list[Alias] | None = None
    UsernameAttributes: list[Literal["email", "phone_number"]] | None = None
    Schema: Annotated[list[SchemaAttribute], Field(min_length=1, max_length=50)] | None = None
    UsernameConfiguration: Document | None = None


class UserPool(UserPoolSettings):
    """A stored user pool, in DescribeUserPool's shape (``Name`` where the input says ``PoolName``)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    Id: UserPoolId
    Name: str
    Arn: str
    CreationDate: float
    LastModifiedDate: float
    AliasAttributes: list[Alias] | None = None
    UsernameAttributes: list[Literal["email", "phone_number"]] | None = None
    SchemaAttributes: list[SchemaAttribute] | None = None
    UsernameConfiguration: Document | None = None
    EstimatedNumberOfUsers: int = 0

    @property
    def password_policy(self) -> PasswordPolicyType:
        return self.Policies.PasswordPolicy

    @property
    def region(self) -> str:
        return self.Id.split("_", 1)[0]

    def username_is_alias(self) -> bool:
        """Whether users sign up with an e-mail address or phone number as username (``UsernameAttributes``): the
        stored username is then the user's ``sub`` and the e-mail/phone an alias."""
        return bool(self.UsernameAttributes)

    def alias_attributes(self) -> frozenset[str]:
        """The attributes a user may also sign in with (and that are unique per pool)."""
        return frozenset(self.UsernameAttributes or ()) | frozenset(self.AliasAttributes or ())

    def wire(self) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True)
        out.pop("PoolName", None)
        return out


class TokenValidityUnitsType(WireModel):
    AccessToken: Literal["seconds", "minutes", "hours", "days"] = "hours"
    IdToken: Literal["seconds", "minutes", "hours", "days"] = "hours"
    RefreshToken: Literal["seconds", "minutes", "hours", "days"] = "days"


_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


class AppClient(WireModel):
    """A stored app client in DescribeUserPoolClient's shape. ``ClientSecret`` is in the clear here only: the store
    seals it. Validities default as AWS's do: 60 minutes (access, id), 30 days (refresh)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    UserPoolId: str
    ClientName: str
    ClientId: str
    ClientSecret: str | None = None
    CreationDate: float
    LastModifiedDate: float
    RefreshTokenValidity: int = 30
    AccessTokenValidity: int = 1
    IdTokenValidity: int = 1
    TokenValidityUnits: TokenValidityUnitsType = Field(default_factory=TokenValidityUnitsType)
    ReadAttributes: list[str] | None = None
    WriteAttributes: list[str] | None = None
    ExplicitAuthFlows: list[AuthFlow] = Field(default_factory=lambda: list(DEFAULT_AUTH_FLOWS))
    SupportedIdentityProviders: list[str] | None = None
    CallbackURLs: list[str] | None = None
    LogoutURLs: list[str] | None = None
    DefaultRedirectURI: str | None = None
    AllowedOAuthFlows: list[str] | None = None
    AllowedOAuthScopes: list[str] | None = None
    AllowedOAuthFlowsUserPoolClient: bool | None = None
    AnalyticsConfiguration: Document | None = None
    PreventUserExistenceErrors: Literal["ENABLED", "LEGACY"] = "ENABLED"
    EnableTokenRevocation: bool = True
    EnablePropagateAdditionalUserContextData: bool = False
    AuthSessionValidity: int = 3

    def allows(self, flow: str) -> bool:
        """Whether the client allows the auth flow ``flow`` (``USER_SRP_AUTH`` or ``ALLOW_USER_SRP_AUTH``)."""
        name = flow if flow.startswith("ALLOW_") else f"ALLOW_{flow}"
        return name in self.ExplicitAuthFlows

    @property
    def access_token_seconds(self) -> int:
        return self.AccessTokenValidity * _UNIT_SECONDS[self.TokenValidityUnits.AccessToken]

    @property
    def id_token_seconds(self) -> int:
        return self.IdTokenValidity * _UNIT_SECONDS[self.TokenValidityUnits.IdToken]

    @property
    def refresh_token_seconds(self) -> int:
        return self.RefreshTokenValidity * _UNIT_SECONDS[self.TokenValidityUnits.RefreshToken]

    @property
    def hides_user_existence(self) -> bool:
        """PreventUserExistenceErrors ENABLED: unknown users answer as known ones do."""
        return self.PreventUserExistenceErrors == "ENABLED"

    def wire(self, *, with_secret: bool = True) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True)
        if not with_secret:
            out.pop("ClientSecret", None)
        return out


class UserStatus(StrEnum):
    UNCONFIRMED = "UNCONFIRMED"
    CONFIRMED = "CONFIRMED"
    FORCE_CHANGE_PASSWORD = "FORCE_CHANGE_PASSWORD"  # noqa: S105 (a status, not a password)
    RESET_REQUIRED = "RESET_REQUIRED"


@dataclass(frozen=True, slots=True)
class User:
    """A user of a pool. ``username`` is what the pool keys the user by (its ``sub`` in pools whose
    UsernameAttributes are email/phone_number); ``attributes`` hold every attribute but ``sub``. ``generation`` rises
    on every global sign-out and password change: tokens issued under an older one are dead."""

    pool_id: str
    username: str
    sub: str
    attributes: dict[str, str]
    status: UserStatus
    enabled: bool
    created_ms: int
    modified_ms: int
    generation: int = 0
    password_hash: str | None = field(default=None, repr=False)
    srp_salt: bytes | None = field(default=None, repr=False)
    srp_verifier: bytes | None = field(default=None, repr=False)
    #: When a temporary password (AdminCreateUser) stops working, epoch ms; None otherwise.
    password_expires_ms: int | None = None
    mfa_options: dict[str, Any] = field(default_factory=dict)

    @property
    def email(self) -> str | None:
        return self.attributes.get("email")

    @property
    def phone_number(self) -> str | None:
        return self.attributes.get("phone_number")

    @property
    def confirmed(self) -> bool:
        return self.status == UserStatus.CONFIRMED

    def attribute_list(self) -> list[dict[str, str]]:
        """``[{"Name": …, "Value": …}]`` with ``sub`` first, as Cognito answers Attributes/UserAttributes."""
        return [{"Name": "sub", "Value": self.sub}] + [
            {"Name": name, "Value": value} for name, value in sorted(self.attributes.items())
        ]

    def claims(self) -> dict[str, str]:
        """Every attribute including ``sub`` (for ID tokens)."""
        return {"sub": self.sub, **self.attributes}


class CodePurpose(StrEnum):
    """What a one-time code proves; each has its own lifetime (``syncsvc.userpools.codes``)."""

    SIGN_UP = "signup"
    RESET = "reset"
    ATTRIBUTE = "attribute"


@dataclass(frozen=True, slots=True)
class CodeDelivery:
    """Where a code went (``CodeDeliveryDetails``): the destination masked as Cognito masks it (``a***@e***``)."""

    destination: str
    medium: Literal["EMAIL", "SMS"]
    attribute: str

    def wire(self) -> dict[str, str]:
        return {"Destination": self.destination, "DeliveryMedium": self.medium, "AttributeName": self.attribute}


@dataclass(frozen=True, slots=True)
class Group:
    pool_id: str
    name: str
    description: str | None
    role_arn: str | None
    precedence: int | None
    created_ms: int
    modified_ms: int

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "GroupName": self.name,
            "UserPoolId": self.pool_id,
            "CreationDate": seconds(self.created_ms),
            "LastModifiedDate": seconds(self.modified_ms),
        }
        if self.description is not None:
            out["Description"] = self.description
        if self.role_arn is not None:
            out["RoleArn"] = self.role_arn
        if self.precedence is not None:
            out["Precedence"] = self.precedence
        return out


#: Token validities Cognito accepts, in seconds once TokenValidityUnits are applied.
_ACCESS_AND_ID_SECONDS = (300, 86_400)
_REFRESH_SECONDS = (3_600, 315_360_000)


def check_validities(client: AppClient) -> None:
    """Cognito's bounds: access and ID tokens live 5 minutes to 1 day, refresh tokens 60 minutes to 10 years."""
    for name, seconds, (low, high) in (
        ("AccessTokenValidity", client.access_token_seconds, _ACCESS_AND_ID_SECONDS),
        ("IdTokenValidity", client.id_token_seconds, _ACCESS_AND_ID_SECONDS),
        ("RefreshTokenValidity", client.refresh_token_seconds, _REFRESH_SECONDS),
    ):
        if not low <= seconds <= high:
            raise InvalidParameterError(
                f"{name} must be between {low} and {high} seconds once TokenValidityUnits are applied; got {seconds}"
            )
