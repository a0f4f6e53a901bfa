"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: a key pair whose private key is sealed under a
symmetric KMS key (``syncsvc.kms.datakeypairs``), checked against the caller like GenerateDataKey (the key's policy
or a grant of the operation, with the encryption context). A Recipient (Nitro enclave attestation) is
UnsupportedOperationException. Blobs are base64 on the wire.
"""

from __future__ import annotations

import base64

from syncsvc.api.kms.inputs import GenerateDataKeyPairIn
from syncsvc.api.kms.outputs import DataKeyPairOut, PlaintextDataKeyPairOut
from syncsvc.api.operations import Call
from syncsvc.errors import UnsupportedOperationError
from syncsvc.kms.datakeypairs import DataKeyPair, generate_data_key_pair
from syncsvc.runtime import Services


async def _pair(services: Services, call: Call[GenerateDataKeyPairIn], operation: str) -> DataKeyPair:
    given = call.given
    await services.key_access.authorize(
        call.caller, operation, given.KeyId, context=given.EncryptionContext, grant_tokens=given.GrantTokens
    )
    if given.Recipient is not None:
        raise UnsupportedOperationError(f"syncsvc has no Nitro enclave attestation: call {operation} without Recipient")
    return await generate_data_key_pair(services.kms.public, given.KeyId, given.KeyPairSpec, given.EncryptionContext)


def _wire(pair: DataKeyPair, spec: str) -> DataKeyPairOut:
    return {
        "PrivateKeyCiphertextBlob": base64.b64encode(pair.private_key_blob).decode("ascii"),
        "PublicKey": base64.b64encode(pair.public_key).decode("ascii"),
        "KeyId": pair.key_arn,
        "KeyPairSpec": spec,
    }


async def generate_data_key_pair_with_plaintext(
    services: Services, call: Call[GenerateDataKeyPairIn]
) -> PlaintextDataKeyPairOut:
    pair = await _pair(services, call, "GenerateDataKeyPair")
    return {**_wire(pair, call.given.KeyPairSpec), "PrivateKeyPlaintext": base64.b64encode(pair.private_key).decode()}


async def generate_data_key_pair_without_plaintext(
    services: Services, call: Call[GenerateDataKeyPairIn]
) -> DataKeyPairOut:
    return _wire(await _pair(services, call, "GenerateDataKeyPairWithoutPlaintext"), call.given.KeyPairSpec)
