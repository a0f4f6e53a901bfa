"""KMS (json 1.1): ``POST /`` with ``X-Amz-Target: TrentService.<Op>``.

:data:`SURFACE` is the surface's table of contents: each operation's input model (``inputs.py``), output shape
(``outputs.py``), who may call it, and the use-case it runs (``lifecycle.py``: keys, rotation, aliases;
``cryptography.py``; ``permissions.py``: grants and key policies). Dispatch, the access rule, validation and DryRun are
``syncsvc.api.operations``'s: a broken constraint is KMS's ValidationException in AWS's words, a member of the wrong
JSON type (a blob that is not base64 text included) or a body that is not JSON a SerializationException, and an input
with ``DryRun`` set runs (the writes take ``dry_run`` and store nothing) and answers DryRunOperationException.

Who may call what, in two steps:

* the operation: identities may call only what a grant can allow (:attr:`Access.GRANTED`); key management —
  CreateKey, ListKeys, aliases, state, rotation, deletion, key policies, CreateGrant, ListGrants, RevokeGrant — takes
  developer credentials (:attr:`Access.DEVELOPER`). CreateGrant accepts every GrantOperation, but a grant's
  CreateGrant does not let an identity create grants. Anyone else gets AccessDeniedException (:func:`refusal`);
* the key: every key a request names is checked against its policy and grants (``syncsvc.kms.access.KeyAccess``),
  with no existence oracle for an identity.

The surface works on ``KeyService.public``: keys syncsvc made for itself (pool master keys, token signing keys) do
not exist there (NotFoundException, left out of ListKeys and ListAliases; see ``syncsvc.kms.keystore``). Outputs name
keys by ARN where KMS does (Encrypt, Decrypt, ReEncrypt, GenerateDataKey*, ScheduleKeyDeletion, CancelKeyDeletion).
"""

from __future__ import annotations

from syncsvc.access import Access
from syncsvc.api.kms import cryptography, inputs, lifecycle, outputs, permissions
from syncsvc.api.operations import Operation, surface
from syncsvc.errors import KmsAccessDeniedError, KmsValidationError
from syncsvc.model import Caller


def refusal(name: str, caller: Caller) -> KmsAccessDeniedError:
    """The answer to a caller who may not call operation ``name`` at all."""
    return KmsAccessDeniedError(
        f"Identity {caller.identity_id} is not authorized to perform: kms:{name} (KMS takes developer credentials)"
    )


DEVELOPER, GRANTED = Access.DEVELOPER, Access.GRANTED
#: The KMS surface: every operation, its input, output, who may call it and what it runs.
SURFACE = surface(
    "kms",
    [
        Operation("CreateKey", inputs.CreateKeyIn, outputs.KeyMetadataOut, DEVELOPER, lifecycle.create_key),
        Operation("DescribeKey", inputs.DescribeKeyIn, outputs.KeyMetadataOut, GRANTED, lifecycle.describe_key),
        Operation("ListKeys", inputs.ListKeysIn, outputs.ListKeysOut, DEVELOPER, lifecycle.list_keys),
        Operation("EnableKey", inputs.KeyIdIn, outputs.Empty, DEVELOPER, lifecycle.enable_key),
        Operation("DisableKey", inputs.KeyIdIn, outputs.Empty, DEVELOPER, lifecycle.disable_key),
        Operation(
            "ScheduleKeyDeletion",
            inputs.ScheduleKeyDeletionIn,
            outputs.ScheduleKeyDeletionOut,
            DEVELOPER,
            lifecycle.schedule_key_deletion,
        ),
        Operation("CancelKeyDeletion", inputs.KeyIdIn, outputs.KeyIdOut, DEVELOPER, lifecycle.cancel_key_deletion),
        Operation(
            "EnableKeyRotation", inputs.EnableKeyRotationIn, outputs.Empty, DEVELOPER, lifecycle.enable_key_rotation
        ),
        Operation("DisableKeyRotation", inputs.KeyIdIn, outputs.Empty, DEVELOPER, lifecycle.disable_key_rotation),
        Operation(
            "GetKeyRotationStatus",
            inputs.KeyIdIn,
            outputs.KeyRotationStatusOut,
            DEVELOPER,
            lifecycle.get_key_rotation_status,
        ),
        Operation("RotateKeyOnDemand", inputs.KeyIdIn, outputs.KeyIdOut, DEVELOPER, lifecycle.rotate_key_on_demand),
        Operation("CreateAlias", inputs.CreateAliasIn, outputs.Empty, DEVELOPER, lifecycle.create_alias),
        Operation("ListAliases", inputs.ListAliasesIn, outputs.ListAliasesOut, DEVELOPER, lifecycle.list_aliases),
        Operation("Encrypt", inputs.EncryptIn, outputs.EncryptOut, GRANTED, cryptography.encrypt),
        Operation("Decrypt", inputs.DecryptIn, outputs.DecryptOut, GRANTED, cryptography.decrypt),
        Operation("ReEncrypt", inputs.ReEncryptIn, outputs.ReEncryptOut, GRANTED, cryptography.re_encrypt),
        Operation(
            "GenerateDataKey",
            inputs.GenerateDataKeyIn,
            outputs.PlaintextDataKeyOut,
            GRANTED,
            cryptography.generate_data_key,
        ),
        Operation(
            "GenerateDataKeyWithoutPlaintext",
            inputs.GenerateDataKeyIn,
            outputs.DataKeyOut,
            GRANTED,
            cryptography.generate_data_key_without_plaintext,
        ),
        Operation("Sign", inputs.SignIn, outputs.SignOut, GRANTED, cryptography.sign),
        Operation("Verify", inputs.VerifyIn, outputs.VerifyOut, GRANTED, cryptography.verify),
        Operation("GetPublicKey", inputs.GetPublicKeyIn, outputs.PublicKeyOut, GRANTED, cryptography.get_public_key),
        Operation("CreateGrant", inputs.CreateGrantIn, outputs.CreateGrantOut, DEVELOPER, permissions.create_grant),
        Operation("ListGrants", inputs.ListGrantsIn, outputs.ListGrantsOut, DEVELOPER, permissions.list_grants),
        Operation("RetireGrant", inputs.RetireGrantIn, outputs.Empty, GRANTED, permissions.retire_grant),
        Operation("RevokeGrant", inputs.RevokeGrantIn, outputs.Empty, DEVELOPER, permissions.revoke_grant),
        Operation("GetKeyPolicy", inputs.GetKeyPolicyIn, outputs.KeyPolicyOut, DEVELOPER, permissions.get_key_policy),
        Operation("PutKeyPolicy", inputs.PutKeyPolicyIn, outputs.Empty, DEVELOPER, permissions.put_key_policy),
    ],
    invalid=KmsValidationError,
    refusal=refusal,
    target_prefix="TrentService.",
)
