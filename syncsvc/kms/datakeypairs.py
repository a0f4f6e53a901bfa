"""Data key pairs (GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext): an asymmetric key pair made for the
caller, its private key sealed under a symmetric KMS key exactly as Encrypt seals (so Decrypt opens it, with the same
encryption context).

The pair is the KeyPairSpec's (RSA_2048/3072/4096, ECC_NIST_P256/384/521, ECC_SECG_P256K1); SM2 (KMS: China Regions
only), ECC_NIST_EDWARDS25519 and ML_KEM_* pairs are not made (UnsupportedOperationException). The KMS key is checked
usable before a pair is generated (an RSA_4096 pair takes up to seconds, in a worker thread), so a request for a key
that cannot seal costs no key generation. Touches the key service's crypto part and ``material`` only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from syncsvc.errors import UnsupportedOperationError
from syncsvc.kms import material
from syncsvc.kms.keyservice import KeyService

#: The KeyPairSpecs syncsvc makes.
PAIR_SPECS = (
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
)


@dataclass(frozen=True, slots=True)
class DataKeyPair:
    """A new key pair: the private key (DER PKCS#8) in the clear and sealed, the public key (DER SubjectPublicKeyInfo),
    and the ARN of the KMS key that sealed it."""

    private_key: bytes
    private_key_blob: bytes
    public_key: bytes
    key_arn: str


async def generate_data_key_pair(
    kms: KeyService, key_ref: str, spec: str, context: Mapping[str, str] | None = None
) -> DataKeyPair:
    """A ``spec`` key pair whose private key is sealed under the symmetric key ``key_ref``."""
    if spec not in PAIR_SPECS:
        raise UnsupportedOperationError(
            f"KeyPairSpec {spec} is not supported: syncsvc makes {', '.join(PAIR_SPECS)} data key pairs"
        )
    key = await kms.keys.key(key_ref)
    key.require_usable()
    private = await asyncio.to_thread(material.new_private_key, spec)
    blob = await kms.crypto.encrypt(key.key_id, private, context)
    return DataKeyPair(private, blob, material.public_key(private), key.arn)
