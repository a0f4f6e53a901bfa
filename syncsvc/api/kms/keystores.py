"""The KMS custom key store operations, served on PKCS#11 tokens (``Services.keystores``).

KMS's CloudHSM key store members map onto a token of the deployment's PKCS#11 module (``SYNCSVC_PKCS11_MODULE``):
CloudHsmClusterId is the token's label (so it follows KMS's pattern ``cluster-`` and 11 to 16 letters or digits 2-7),
KeyStorePassword its user PIN (7 to 32 characters, as KMS's kmsuser password), TrustAnchorCertificate is kept and
described as given (a token has no cluster certificate to check it against). External key stores (XKS) are not served.
"""

from __future__ import annotations

from syncsvc.api.kms.inputs import (
    CreateCustomKeyStoreIn,
    CustomKeyStoreIdIn,
    DescribeCustomKeyStoresIn,
    UpdateCustomKeyStoreIn,
)
from syncsvc.api.kms.markers import Markers
from syncsvc.api.kms.outputs import (
    CreateCustomKeyStoreOut,
    CustomKeyStoresListEntry,
    DescribeCustomKeyStoresOut,
    Empty,
)
from syncsvc.api.operations import Call
from syncsvc.errors import KmsValidationError, UnsupportedOperationError
from syncsvc.kms.custom_keystores import CustomKeystore
from syncsvc.runtime import Services

_XKS = (
    "XksProxyUriEndpoint",
    "XksProxyUriPath",
    "XksProxyVpcEndpointServiceName",
    "XksProxyVpcEndpointServiceOwner",
    "XksProxyAuthenticationCredential",
    "XksProxyConnectivity",
)


def _no_external(given: CreateCustomKeyStoreIn | UpdateCustomKeyStoreIn) -> None:
    if any(getattr(given, member) is not None for member in _XKS):
        raise UnsupportedOperationError(
            "syncsvc serves custom key stores of type AWS_CLOUDHSM (on PKCS#11 tokens) only, not external key stores"
        )


async def create_custom_key_store(services: Services, call: Call[CreateCustomKeyStoreIn]) -> CreateCustomKeyStoreOut:
    given = call.given
    if given.CustomKeyStoreType == "EXTERNAL_KEY_STORE":
        raise UnsupportedOperationError(
            "syncsvc serves custom key stores of type AWS_CLOUDHSM (on PKCS#11 tokens) only, not external key stores"
        )
    _no_external(given)
    if given.CloudHsmClusterId is None or given.TrustAnchorCertificate is None or given.KeyStorePassword is None:
        raise KmsValidationError(
            "CloudHsmClusterId, TrustAnchorCertificate and KeyStorePassword are required for a custom key store of "
            "type AWS_CLOUDHSM"
        )
    store_id = await services.keystores.create(
        given.CustomKeyStoreName, given.CloudHsmClusterId, given.TrustAnchorCertificate, given.KeyStorePassword
    )
    return {"CustomKeyStoreId": store_id}


async def describe_custom_key_stores(
    services: Services, call: Call[DescribeCustomKeyStoresIn]
) -> DescribeCustomKeyStoresOut:
    given, keystores = call.given, services.keystores
    if given.CustomKeyStoreId is not None and given.CustomKeyStoreName is not None:
        raise KmsValidationError("Specify either CustomKeyStoreId or CustomKeyStoreName, not both")
    markers = Markers(services.signer, "DescribeCustomKeyStores")
    if given.CustomKeyStoreId is not None:
        found = [await keystores.get(given.CustomKeyStoreId)]
    elif given.CustomKeyStoreName is not None:
        found = [await keystores.named(given.CustomKeyStoreName)]
    else:
        found = await keystores.listed(after=markers.after(given.Marker), limit=given.Limit + 1)
    listed = [(_entry(keystore), keystore.store_id) for keystore in found]
    entries, page = markers.page(listed, given.Limit)
    return {"CustomKeyStores": entries, **page}


async def connect_custom_key_store(services: Services, call: Call[CustomKeyStoreIdIn]) -> Empty:
    await services.keystores.connect(call.given.CustomKeyStoreId)
    return {}


async def disconnect_custom_key_store(services: Services, call: Call[CustomKeyStoreIdIn]) -> Empty:
    await services.keystores.disconnect(call.given.CustomKeyStoreId)
    return {}


async def update_custom_key_store(services: Services, call: Call[UpdateCustomKeyStoreIn]) -> Empty:
    given = call.given
    _no_external(given)
    await services.keystores.update(
        given.CustomKeyStoreId,
        name=given.NewCustomKeyStoreName,
        token_label=given.CloudHsmClusterId,
        pin=given.KeyStorePassword,
    )
    return {}


async def delete_custom_key_store(services: Services, call: Call[CustomKeyStoreIdIn]) -> Empty:
    await services.keystores.delete(call.given.CustomKeyStoreId)
    return {}


def _entry(keystore: CustomKeystore) -> CustomKeyStoresListEntry:
    entry: CustomKeyStoresListEntry = {
        "CustomKeyStoreId": keystore.store_id,
        "CustomKeyStoreName": keystore.name,
        "CloudHsmClusterId": keystore.token_label,
        "TrustAnchorCertificate": keystore.trust_anchor,
        "ConnectionState": keystore.state,
        "CreationDate": keystore.created_ms / 1000,
        "CustomKeyStoreType": "AWS_CLOUDHSM",
    }
    if keystore.state == "FAILED":
        entry["ConnectionErrorCode"] = keystore.error_code
    return entry
