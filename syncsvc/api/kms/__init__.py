"""KMS (json 1.1): ``POST /`` with ``X-Amz-Target: TrentService.<Op>``.

:data:`SURFACE` is the surface's table of contents: each operation's input model (``inputs.py``), output shape
(``outputs.py``), who may call it, and the use-case it runs (``lifecycle.py``: keys, rotation and its history,
aliases, key policy names; ``tags.py``; ``cryptography.py``; ``keypairs.py``: data key pairs; ``entropy.py``:
GenerateRandom; ``permissions.py``: grants and key policies; ``retirable.py``: ListRetirableGrants; ``imports.py``:
imported key material; ``unserved.py``: the operations refused with their reason).
Dispatch, the access rule, validation and DryRun are ``syncsvc.api.operations``'s: a broken constraint is KMS's
ValidationException in AWS's words, a member of the wrong JSON type (a blob that is not base64 text included) or a body
that is not JSON a SerializationException, and an input with ``DryRun`` set runs (the writes take ``dry_run`` and
store nothing) and answers DryRunOperationException.

Who may call what, in two steps:

* the operation: identities may call only what a grant can allow (:attr:`Access.GRANTED`), and GenerateRandom (it
  names no key: any caller KMS lets in may call it); key management — CreateKey, ListKeys, aliases, state,
  description, tags, rotation, deletion, key policies, CreateGrant, ListGrants, ListRetirableGrants, RevokeGrant —
  and the operations syncsvc does not serve (``unserved.py``: UnsupportedOperationException with the reason) take
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
from syncsvc.api.kms import (
    cryptography,
    entropy,
    imports,
    inputs,
    keypairs,
    keystores,
    lifecycle,
    outputs,
    permissions,
    retirable,
    tags,
    unserved,
)
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
        # HMAC keys
        Operation("GenerateMac", inputs.GenerateMacIn, outputs.GenerateMacOut, GRANTED, cryptography.generate_mac),
        Operation("VerifyMac", inputs.VerifyMacIn, outputs.VerifyMacOut, GRANTED, cryptography.verify_mac),
        # the rest of the KMS API: tags, aliases, descriptions, key policy names, rotation history, GenerateRandom
        Operation("TagResource", inputs.TagResourceIn, outputs.Empty, DEVELOPER, tags.tag_resource),
        Operation("UntagResource", inputs.UntagResourceIn, outputs.Empty, DEVELOPER, tags.untag_resource),
        Operation(
            "ListResourceTags",
            inputs.ListResourceTagsIn,
            outputs.ListResourceTagsOut,
            DEVELOPER,
            tags.list_resource_tags,
        ),
        Operation("UpdateAlias", inputs.UpdateAliasIn, outputs.Empty, DEVELOPER, lifecycle.update_alias),
        Operation("DeleteAlias", inputs.DeleteAliasIn, outputs.Empty, DEVELOPER, lifecycle.delete_alias),
        Operation(
            "UpdateKeyDescription",
            inputs.UpdateKeyDescriptionIn,
            outputs.Empty,
            DEVELOPER,
            lifecycle.update_key_description,
        ),
        Operation(
            "ListKeyPolicies",
            inputs.ListKeyPoliciesIn,
            outputs.ListKeyPoliciesOut,
            DEVELOPER,
            lifecycle.list_key_policies,
        ),
        Operation(
            "ListKeyRotations",
            inputs.ListKeyRotationsIn,
            outputs.ListKeyRotationsOut,
            DEVELOPER,
            lifecycle.list_key_rotations,
        ),
        Operation(
            "GenerateRandom", inputs.GenerateRandomIn, outputs.GenerateRandomOut, GRANTED, entropy.generate_random
        ),
        Operation(
            "ListRetirableGrants",
            inputs.ListRetirableGrantsIn,
            outputs.ListGrantsOut,
            DEVELOPER,
            retirable.list_retirable_grants,
        ),
        Operation(
            "GenerateDataKeyPair",
            inputs.GenerateDataKeyPairIn,
            outputs.PlaintextDataKeyPairOut,
            GRANTED,
            keypairs.generate_data_key_pair_with_plaintext,
        ),
        Operation(
            "GenerateDataKeyPairWithoutPlaintext",
            inputs.GenerateDataKeyPairIn,
            outputs.DataKeyPairOut,
            GRANTED,
            keypairs.generate_data_key_pair_without_plaintext,
        ),
        *(Operation(name, inputs.AnyIn, outputs.Empty, DEVELOPER, unserved.refused(name)) for name in unserved.REASONS),
        # custom key stores: PKCS#11 tokens served as CloudHSM key stores (keystores.py)
        Operation(
            "CreateCustomKeyStore",
            inputs.CreateCustomKeyStoreIn,
            outputs.CreateCustomKeyStoreOut,
            DEVELOPER,
            keystores.create_custom_key_store,
        ),
        Operation(
            "DescribeCustomKeyStores",
            inputs.DescribeCustomKeyStoresIn,
            outputs.DescribeCustomKeyStoresOut,
            DEVELOPER,
            keystores.describe_custom_key_stores,
        ),
        Operation(
            "ConnectCustomKeyStore",
            inputs.CustomKeyStoreIdIn,
            outputs.Empty,
            DEVELOPER,
            keystores.connect_custom_key_store,
        ),
        Operation(
            "DisconnectCustomKeyStore",
            inputs.CustomKeyStoreIdIn,
            outputs.Empty,
            DEVELOPER,
            keystores.disconnect_custom_key_store,
        ),
        Operation(
            "UpdateCustomKeyStore",
            inputs.UpdateCustomKeyStoreIn,
            outputs.Empty,
            DEVELOPER,
            keystores.update_custom_key_store,
        ),
        Operation(
            "DeleteCustomKeyStore",
            inputs.CustomKeyStoreIdIn,
            outputs.Empty,
            DEVELOPER,
            keystores.delete_custom_key_store,
        ),
        # imported key material (Origin EXTERNAL: imports.py)
        Operation(
            "GetParametersForImport",
            inputs.GetParametersForImportIn,
            outputs.GetParametersForImportOut,
            DEVELOPER,
            imports.get_parameters_for_import,
        ),
        Operation(
            "ImportKeyMaterial", inputs.ImportKeyMaterialIn, outputs.Empty, DEVELOPER, imports.import_key_material
        ),
        Operation(
            "DeleteImportedKeyMaterial",
            inputs.KeyIdIn,
            outputs.Empty,
            DEVELOPER,
            imports.delete_imported_key_material,
        ),
    ],
    invalid=KmsValidationError,
    refusal=refusal,
    target_prefix="TrentService.",
)
