"""The KMS operations of imported key material (Origin EXTERNAL): GetParametersForImport, ImportKeyMaterial and
DeleteImportedKeyMaterial (CreateKey with Origin EXTERNAL is ``lifecycle.py``'s).

Each takes the key as KMS documents it, by key id or key ARN (an alias is NotFoundException), checks the caller
against it (``Services.key_access``), calls ``KeyService.public.lifecycle.imports`` (``syncsvc.kms.imports``) and
shapes KMS's answer, blobs as base64.
"""

from __future__ import annotations

import base64

from syncsvc.api import wire
from syncsvc.api.kms.inputs import GetParametersForImportIn, ImportKeyMaterialIn, KeyIdIn
from syncsvc.api.kms.outputs import Empty, GetParametersForImportOut
from syncsvc.api.operations import Call
from syncsvc.runtime import Services


async def get_parameters_for_import(
    services: Services, call: Call[GetParametersForImportIn]
) -> GetParametersForImportOut:
    given, kms = call.given, services.kms.public
    key_id = await kms.keys.key_id_only(given.KeyId)
    await services.key_access.authorize(call.caller, "GetParametersForImport", key_id)
    made = await kms.lifecycle.imports.parameters(key_id, given.WrappingAlgorithm, given.WrappingKeySpec)
    return {
        "KeyId": made.key.arn,
        "ImportToken": _blob(made.token),
        "PublicKey": _blob(made.public_key),
        "ParametersValidTo": made.valid_to_ms / 1000,
    }


async def import_key_material(services: Services, call: Call[ImportKeyMaterialIn]) -> Empty:
    given, kms = call.given, services.kms.public
    key_id = await kms.keys.key_id_only(given.KeyId)
    await services.key_access.authorize(call.caller, "ImportKeyMaterial", key_id)
    await kms.lifecycle.imports.import_material(
        key_id,
        given.ImportToken,
        given.EncryptedKeyMaterial,
        expiration_model=given.ExpirationModel,
        valid_to_ms=None if given.ValidTo is None else wire.ms_from_seconds(given.ValidTo),
    )
    return {}


async def delete_imported_key_material(services: Services, call: Call[KeyIdIn]) -> Empty:
    kms = services.kms.public
    key_id = await kms.keys.key_id_only(call.given.KeyId)
    await services.key_access.authorize(call.caller, "DeleteImportedKeyMaterial", key_id)
    await kms.lifecycle.imports.delete_material(key_id)
    return {}


def _blob(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
