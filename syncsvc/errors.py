"""One exception tree for the whole service.

Every class knows its AWS error name (``code``) and HTTP status, so the API layer maps any of them to the wire in one
place (``syncsvc.api.middleware``). Domain code raises the error where the rule lives and never builds responses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from syncsvc.model import DatasetState, Record


class StandingLostError(Exception):
    """Not an answer: an operation that checks its caller's identity in its own script (``syncsvc.model.Standing``)
    found that it no longer stands as admitted, and wrote nothing. The API admits the caller again, reading its
    identity (a revoked one is refused there) and runs the operation once more."""


class SyncsvcError(Exception):
    """Base of every error the service answers with. ``message`` is shown to the caller as is."""

    code: ClassVar[str] = "InternalErrorException"
    status: ClassVar[int] = 500
    #: The status on the json 1.1 surfaces (Cognito Identity): their models give errors no HTTP status, so AWS
    #: answers the json default, 400, where Cognito Sync's rest-json model gives 403/404/409/429. None: ``status``.
    json_status: ClassVar[int | None] = None
    #: Seconds a client should wait before it retries (the ``Retry-After`` header); None: no header.
    retry_after_seconds: ClassVar[int | None] = None

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        #: Extra top-level members of the error body (e.g. the stored records of a conflict).
        self.extra = extra


# --- request errors -----------------------------------------------------------------------------------------------


class InvalidParameterError(SyncsvcError):
    code = "InvalidParameterException"
    status = 400


class InputValidationError(SyncsvcError):
    """A member breaks its constraint in the service model (Cognito Identity's and KMS's answer; Cognito Sync answers
    InvalidParameterException). The message is AWS's: ``1 validation error detected: Value …``."""

    code = "ValidationException"
    status = 400


class SerializationError(SyncsvcError):
    """The body is not JSON, or a member has the wrong JSON type (what real AWS answers for such bodies)."""

    code = "SerializationException"
    status = 400


class RequestTooLargeError(SyncsvcError):
    code = "InvalidParameterException"
    status = 413


class RequestTimeoutError(SyncsvcError):
    """The request body did not arrive in full within ``Settings.body_timeout_seconds``."""

    code = "RequestTimeoutException"
    status = 408
    json_status = 400


class IncompleteRequestError(SyncsvcError):
    """The client ended the connection, or broke the HTTP framing, before its body was complete (it hears nothing
    back; the error exists so that such a request is one quiet line, not an "unexpected error")."""

    code = "SerializationException"
    status = 400


class UnknownOperationError(SyncsvcError):
    code = "UnknownOperationException"
    status = 404


class UnknownTargetError(SyncsvcError):
    """A json 1.1 request whose X-Amz-Target names no operation of ours (AWS answers these with 400)."""

    code = "UnknownOperationException"
    status = 400


class MethodNotAllowedError(SyncsvcError):
    code = "UnknownOperationException"
    status = 405


class NotAuthorizedError(SyncsvcError):
    code = "NotAuthorizedException"
    status = 403
    json_status = 400


class ResourceNotFoundError(SyncsvcError):
    code = "ResourceNotFoundException"
    status = 404
    json_status = 400


class ResourceConflictError(SyncsvcError):
    code = "ResourceConflictException"
    status = 409
    json_status = 400


class RecordConflictError(ResourceConflictError):
    """A stale patch. Carries the stored records (with their version vectors) and the dataset's state, so the client
    can merge without another round trip."""

    def __init__(self, message: str, *, records: list[Record], dataset: DatasetState) -> None:
        super().__init__(message)
        self.records = records
        self.dataset = dataset


class LimitExceededError(SyncsvcError):
    code = "LimitExceededException"
    status = 400


class InvalidConfigurationError(SyncsvcError):
    code = "InvalidConfigurationException"
    status = 400


class DuplicateRequestError(SyncsvcError):
    """A bulk publish of the pool is already IN_PROGRESS."""

    code = "DuplicateRequestException"
    status = 400


class AlreadyStreamedError(SyncsvcError):
    """The pool's last bulk publish succeeded less than ``Settings.bulk_publish_window_seconds`` ago."""

    code = "AlreadyStreamedException"
    status = 400


class InvalidLambdaFunctionOutputError(SyncsvcError):
    """A sync trigger refused the write (its message), failed, or answered with something that is not a dataset."""

    code = "InvalidLambdaFunctionOutputException"
    status = 400


class LambdaThrottledError(SyncsvcError):
    """A sync trigger timed out or is at its concurrency limit: retriable, as AWS Lambda throttling is."""

    code = "LambdaThrottledException"
    status = 429


class TooManyRequestsError(SyncsvcError):
    code = "TooManyRequestsException"
    status = 429
    json_status = 400


class RateExceededError(TooManyRequestsError):
    """A rate limit (``syncsvc.store.rates``) refused the call before it did anything: its window is one second, so
    the SDKs are told to retry after one."""

    retry_after_seconds = 1


class OverloadedError(TooManyRequestsError):
    """The process is at its bound of requests in flight (``syncsvc.api.overload``): refused at once, nothing done;
    the SDKs retry TooManyRequestsException with backoff, after ``Retry-After``."""

    retry_after_seconds = 1


# --- KMS errors (reference §4: every one 400, json 1.1) -------------------------------------------------------------


class KmsError(SyncsvcError):
    status = 400


class KmsNotFoundError(KmsError):
    code = "NotFoundException"


class KmsDisabledError(KmsError):
    code = "DisabledException"


class KmsInvalidStateError(KmsError):
    code = "KMSInvalidStateException"


class InvalidCiphertextError(KmsError):
    code = "InvalidCiphertextException"


class IncorrectKeyError(KmsError):
    code = "IncorrectKeyException"


class InvalidKeyUsageError(KmsError):
    code = "InvalidKeyUsageException"


class KmsLimitExceededError(KmsError):
    code = "LimitExceededException"


class KmsValidationError(KmsError):
    code = "ValidationException"


class UnsupportedOperationError(KmsError):
    code = "UnsupportedOperationException"


class KmsAccessDeniedError(KmsError):
    """A KMS call with credentials that may not use KMS (an identity's temporary credentials or token)."""

    code = "AccessDeniedException"


class KmsAlreadyExistsError(KmsError):
    code = "AlreadyExistsException"


class InvalidAliasNameError(KmsError):
    code = "InvalidAliasNameException"


class InvalidArnError(KmsError):
    code = "InvalidArnException"


class InvalidMarkerError(KmsError):
    code = "InvalidMarkerException"


class KmsConflictError(KmsError):
    code = "ConflictException"


class KmsInvalidSignatureError(KmsError):
    """Verify of a signature that is not valid (KMS answers an error, not ``SignatureValid: false``)."""

    code = "KMSInvalidSignatureException"


class KmsInvalidMacError(KmsError):
    """VerifyMac of a MAC that does not match (KMS answers an error, not ``MacValid: false``)."""

    code = "KMSInvalidMacException"


class DryRunOperationError(KmsError):
    """``DryRun: true`` on a request that would have succeeded (KMS answers it as an error)."""

    code = "DryRunOperationException"


class MalformedPolicyDocumentError(KmsError):
    """A key policy that is not JSON, not of the shape syncsvc evaluates, or that would lock the caller out."""

    code = "MalformedPolicyDocumentException"


class InvalidGrantTokenError(KmsError):
    code = "InvalidGrantTokenException"


class InvalidGrantIdError(KmsError):
    code = "InvalidGrantIdException"


class TagError(KmsError):
    """Tags KMS refuses: more than 50 on a key, a key given twice, or the reserved ``aws:`` prefix."""

    code = "TagException"


class CustomKeyStoreNotFoundError(KmsError):
    code = "CustomKeyStoreNotFoundException"


# --- KMS imported key material (Origin EXTERNAL) ---------------------------------------------------------------------


class ExpiredImportTokenError(KmsError):
    code = "ExpiredImportTokenException"


class InvalidImportTokenError(KmsError):
    code = "InvalidImportTokenException"


class IncorrectKeyMaterialError(KmsError):
    code = "IncorrectKeyMaterialException"


# --- KMS custom key stores (PKCS#11 tokens served as CloudHSM key stores) ---------------------------------------------


class KmsInternalError(KmsError):
    """A failure of the service itself or of what it depends on (a PKCS#11 token: ``syncsvc.kms.hsm``)."""

    code = "KMSInternalException"
    status = 500


class CustomKeyStoreNameInUseError(KmsError):
    code = "CustomKeyStoreNameInUseException"


class CustomKeyStoreInvalidStateError(KmsError):
    code = "CustomKeyStoreInvalidStateException"


class CustomKeyStoreHasCmksError(KmsError):
    code = "CustomKeyStoreHasCMKsException"


class CloudHsmClusterNotFoundError(KmsError):
    code = "CloudHsmClusterNotFoundException"


class CloudHsmClusterInUseError(KmsError):
    code = "CloudHsmClusterInUseException"


# --- authentication errors (reference §0.1 and §5) -------------------------------------------------------------------


class MissingAuthenticationTokenError(SyncsvcError):
    code = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignatureError(SyncsvcError):
    code = "IncompleteSignatureException"
    status = 400


class InvalidSignatureError(SyncsvcError):
    code = "InvalidSignatureException"
    status = 400


class UnrecognizedClientError(SyncsvcError):
    code = "UnrecognizedClientException"
    status = 400


class ExpiredTokenError(SyncsvcError):
    code = "ExpiredTokenException"
    status = 403


# --- server-side errors --------------------------------------------------------------------------------------------


class BackendUnavailableError(SyncsvcError):
    """A backing store (Redis) cannot be reached. Answered 503 with ``Retry-After``; nothing was changed."""

    code = "InternalErrorException"
    status = 503
    retry_after_seconds: ClassVar[int] = 1


class ReplicationUnconfirmedError(BackendUnavailableError):
    """A write ran on the Redis primary but fewer replicas than ``SYNCSVC_REDIS_REPLICA_ACKS`` confirmed it in time,
    so it is not acknowledged: 503 with ``Retry-After``. Unlike its parent, something *was* changed (on the primary
    only); the client's retry is answered from what was stored (UpdateRecords recognises its writer's fingerprint)."""


class StoreOutOfMemoryError(BackendUnavailableError):
    """Redis is out of memory (``maxmemory`` reached under ``noeviction``) and refused a write, which changed nothing.

    Answered like any backend outage, 503 ``InternalErrorException`` with ``Retry-After``, because that is what every
    AWS SDK retries on its own (botocore retries any 503; ``LimitExceededException`` would read as the dataset's limit
    and ``TooManyRequestsException`` as the caller's rate); the message names the cause. Reads keep working."""

    retry_after_seconds: ClassVar[int] = 5


# --- Cognito user pools (AWSCognitoIdentityProviderService: every error 400, as its json 1.1 model gives none) -----


class UserPoolError(SyncsvcError):
    status = 400


class UserPoolNotAuthorizedError(UserPoolError):
    """A wrong password, a disabled user, a caller without developer credentials on an admin operation."""

    code = "NotAuthorizedException"


class UserPoolNotFoundError(UserPoolError):
    """No such user pool, app client or group."""

    code = "ResourceNotFoundException"


class UserNotFoundError(UserPoolError):
    code = "UserNotFoundException"


class UsernameExistsError(UserPoolError):
    code = "UsernameExistsException"


class AliasExistsError(UserPoolError):
    code = "AliasExistsException"


class GroupExistsError(UserPoolError):
    code = "GroupExistsException"


class CodeMismatchError(UserPoolError):
    code = "CodeMismatchException"


class ExpiredCodeError(UserPoolError):
    code = "ExpiredCodeException"


class InvalidPasswordError(UserPoolError):
    code = "InvalidPasswordException"


class UserNotConfirmedError(UserPoolError):
    code = "UserNotConfirmedException"


class UserPoolLimitExceededError(UserPoolError):
    code = "LimitExceededException"


class TooManyFailedAttemptsError(UserPoolError):
    code = "TooManyFailedAttemptsException"


class PasswordResetRequiredError(UserPoolError):
    code = "PasswordResetRequiredException"


class CodeDeliveryFailureError(UserPoolError):
    """The code sender (SMTP) refused or could not be reached; nothing was changed that needs the code."""

    code = "CodeDeliveryFailureException"


class UnsupportedUserStateError(UserPoolError):
    """AdminCreateUser RESEND for a user who is not waiting for a first sign-in."""

    code = "UnsupportedUserStateException"


class EnableSoftwareTokenMfaError(UserPoolError):
    """VerifySoftwareToken: the code does not match the secret AssociateSoftwareToken gave (TOTP not set up)."""

    code = "EnableSoftwareTokenMFAException"


class UserLambdaValidationError(UserPoolError):
    """A user-pool trigger (PreSignUp, PostConfirmation, PreAuthentication …) refused the request or raised; the
    message is Cognito's ``<Trigger> failed with error <the trigger's message>.``"""

    code = "UserLambdaValidationException"


class InvalidLambdaResponseError(UserPoolError):
    """A user-pool trigger answered something that is not its event with a usable ``response``."""

    code = "InvalidLambdaResponseException"


class UnexpectedLambdaError(UserPoolError):
    """A user-pool trigger could not be called: not registered on this server, timed out, or at its concurrency
    limit."""

    code = "UnexpectedLambdaException"
