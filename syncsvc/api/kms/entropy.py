"""GenerateRandom: random bytes from the operating system's CSPRNG (``secrets``), on no key; or, with a
CustomKeyStoreId, from the generator of that custom key store's PKCS#11 token (``Services.keystores``).

KMS requires NumberOfBytes (1 to 1024; ValidationException in AWS's words when it is missing). A custom key store
that does not exist is CustomKeyStoreNotFoundException, one that is not CONNECTED CustomKeyStoreInvalidStateException
(``CustomKeystores.token``). syncsvc has no Nitro enclave attestation (a Recipient is UnsupportedOperationException).
Any caller KMS lets call it may: developers, and identities (``Access.GRANTED``: it names no key, so no grant is
needed).
"""

from __future__ import annotations

import base64
import secrets

from syncsvc.api.kms.inputs import GenerateRandomIn
from syncsvc.api.kms.outputs import GenerateRandomOut
from syncsvc.api.operations import Call
from syncsvc.errors import KmsValidationError, UnsupportedOperationError
from syncsvc.runtime import Services


async def generate_random(services: Services, call: Call[GenerateRandomIn]) -> GenerateRandomOut:
    given = call.given
    if given.NumberOfBytes is None:
        raise KmsValidationError(
            "1 validation error detected: Value null at 'numberOfBytes' failed to satisfy constraint: Member must "
            "not be null"
        )
    if given.Recipient is not None:
        raise UnsupportedOperationError(
            "syncsvc has no Nitro enclave attestation: call GenerateRandom without Recipient"
        )
    if given.CustomKeyStoreId is None:
        drawn = secrets.token_bytes(given.NumberOfBytes)
    else:
        drawn = await (await services.keystores.token(given.CustomKeyStoreId)).random(given.NumberOfBytes)
    return {"Plaintext": base64.b64encode(drawn).decode("ascii")}
