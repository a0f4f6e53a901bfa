"""The server half of Cognito's SRP-6a (``syncsvc.userpools.srp``) against pycognito's client half: the client's
math from ``pycognito.aws_srp`` runs as is (no request is sent), so the conventions it encodes — padding, hashing of
hex, the salt as an integer, the HKDF, the signed message — are checked byte for byte, not restated."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycognito import aws_srp  # type: ignore[import-untyped]

from syncsvc.userpools import srp
from syncsvc.userpools.srp import ServerState, SrpError

POOL_ID = "us-east-1_AbC123xyz"
USERNAME = "alice"
PASSWORD = "Correct-Horse-9"

#: pycognito's AWSSRP builds a boto3 client unless given one; no test here lets it send a request.
_NO_REQUESTS = object()

#: Text that can be encoded (no lone surrogates), as the JSON a client sends decodes.
_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


def _client(username: str = USERNAME, password: str = PASSWORD, pool_id: str = POOL_ID) -> Any:
    return aws_srp.AWSSRP(
        username=username, password=password, pool_id=pool_id, client_id="client", client=_NO_REQUESTS
    )


def _exchange(
    password: str = PASSWORD, *, username: str = USERNAME, salt: bytes | None = None
) -> tuple[ServerState, dict[str, str], dict[str, str]]:
    """A verifier for PASSWORD, a challenge for a client holding ``password``, and the client's answer to it."""
    if salt is None:
        salt, verifier = srp.make_verifier(POOL_ID, username, PASSWORD)
    else:
        verifier = srp.compute_verifier(POOL_ID, username, PASSWORD, salt)
    client = _client(username, password)
    auth_parameters = client.get_auth_params()
    state, challenge = srp.start(POOL_ID, username, salt, verifier, auth_parameters["SRP_A"])
    answer: dict[str, str] = client.process_challenge(challenge, auth_parameters)
    return state, challenge, answer


def _check(state: ServerState, answer: dict[str, str]) -> bool:
    return srp.check(
        state,
        answer["USERNAME"],
        answer["TIMESTAMP"],
        answer["PASSWORD_CLAIM_SECRET_BLOCK"],
        answer["PASSWORD_CLAIM_SIGNATURE"],
    )


# the group and its constants are the clients'


def test_group_is_the_clients_group() -> None:
    client = _client()
    assert (client.big_n, client.val_g, client.val_k) == (srp.N, srp.G, srp.K)


# a correct password signs in


def test_pycognito_signature_over_the_challenge_is_accepted() -> None:
    state, challenge, answer = _exchange()

    assert _check(state, answer)
    assert set(challenge) == {"SALT", "SRP_B", "SECRET_BLOCK", "USER_ID_FOR_SRP", "USERNAME"}
    assert challenge["USER_ID_FOR_SRP"] == challenge["USERNAME"] == USERNAME
    assert int(challenge["SRP_B"], 16) == state.server_public
    assert base64.b64decode(challenge["SECRET_BLOCK"], validate=True) == state.secret_block


@pytest.mark.parametrize(
    "salt",
    [
        bytes(16),  # the integer 0
        b"\x00\x00" + bytes(range(1, 15)),  # leading zero bytes, which the integer the client parses drops
        b"\x80" + bytes(15),  # top bit set: PAD adds a 00
        b"\x7f" + b"\xff" * 15,  # top bit clear
        b"\x05" + bytes(15),  # an odd number of hex digits once the leading zero goes
    ],
    ids=["zero", "leading-zeros", "top-bit", "no-top-bit", "odd-digits"],
)
def test_salts_at_padding_edges_sign_in(salt: bytes) -> None:
    state, challenge, answer = _exchange(salt=salt)

    assert _check(state, answer)
    # SALT is already padded: clients that pad its text (pycognito) and those that pad the integer (amplify-js) agree
    assert aws_srp.pad_hex(challenge["SALT"]) == challenge["SALT"]
    assert aws_srp.pad_hex(int(challenge["SALT"], 16)) == challenge["SALT"]


@settings(max_examples=8)
@given(username=_text, password=_text)
def test_any_username_and_password_sign_in(username: str, password: str) -> None:
    salt, verifier = srp.make_verifier(POOL_ID, username, password)
    client = _client(username, password)
    auth_parameters = client.get_auth_params()
    state, challenge = srp.start(POOL_ID, username, salt, verifier, auth_parameters["SRP_A"])

    assert _check(state, client.process_challenge(challenge, auth_parameters))


def test_state_read_back_from_bytes_signs_in() -> None:
    state, _, answer = _exchange()

    restored = ServerState.from_bytes(state.to_bytes())

    assert restored == state
    assert _check(restored, answer)


# anything else is refused


def test_wrong_password_is_refused() -> None:
    state, _, answer = _exchange("Correct-Horse-8")

    assert not _check(state, answer)


def test_client_of_another_pool_is_refused() -> None:
    salt, verifier = srp.make_verifier(POOL_ID, USERNAME, PASSWORD)
    client = _client(pool_id="us-east-1_Other0000")
    auth_parameters = client.get_auth_params()
    state, challenge = srp.start(POOL_ID, USERNAME, salt, verifier, auth_parameters["SRP_A"])

    assert not _check(state, client.process_challenge(challenge, auth_parameters))


def _flip_last_base64_byte(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _next_second(timestamp: str) -> str:
    moment = srp.parse_timestamp(timestamp)
    assert moment is not None
    return srp.format_timestamp(moment.replace(second=(moment.second + 1) % 60))


@pytest.mark.parametrize(
    ("field", "tamper"),
    [
        ("PASSWORD_CLAIM_SIGNATURE", _flip_last_base64_byte),
        ("TIMESTAMP", _next_second),
        ("PASSWORD_CLAIM_SECRET_BLOCK", _flip_last_base64_byte),
        ("USERNAME", lambda name: name + "x"),
    ],
    ids=["signature", "timestamp", "secret-block", "username"],
)
def test_tampered_answer_is_refused(field: str, tamper: Any) -> None:
    state, _, answer = _exchange()

    assert not _check(state, {**answer, field: tamper(answer[field])})


def test_signature_over_a_secret_block_not_issued_is_refused() -> None:
    salt, verifier = srp.make_verifier(POOL_ID, USERNAME, PASSWORD)
    client = _client()
    auth_parameters = client.get_auth_params()
    state, challenge = srp.start(POOL_ID, USERNAME, salt, verifier, auth_parameters["SRP_A"])
    forged_block = base64.b64encode(b"\x01" * srp.SECRET_BLOCK_BYTES).decode()

    # a consistent answer, correctly signed with the right password, over a block the server never issued
    answer = client.process_challenge({**challenge, "SECRET_BLOCK": forged_block}, auth_parameters)

    assert answer["PASSWORD_CLAIM_SECRET_BLOCK"] == forged_block
    assert not _check(state, answer)


def test_state_of_another_exchange_is_refused() -> None:
    _, _, answer = _exchange()
    other_state, _, _ = _exchange()

    assert not _check(other_state, answer)


_VALID = "Tue Mar 5 09:04:01 UTC 2024"


@pytest.mark.parametrize(
    ("username", "timestamp", "secret_block", "signature"),
    [
        (USERNAME, _VALID, "", ""),
        (USERNAME, _VALID, "not base64!", "AAAA"),
        (USERNAME, _VALID, "AAAA", "AAA"),  # bad padding
        (USERNAME, _VALID, "AAAA", "ÄÄÄÄ"),  # non-ASCII
        (USERNAME, _VALID, "AAAA", "\ud800AAA"),  # lone surrogate
        ("\ud800", _VALID, "AAAA", "AAAA"),
        (USERNAME, "", "AAAA", "AAAA"),
        (USERNAME, "\ud800", "AAAA", "AAAA"),
        (USERNAME, "Tue Mar \u0665 09:04:01 UTC 2024", "AAAA", "AAAA"),  # a non-ASCII digit
    ],
)
def test_malformed_answer_is_refused_without_raising(
    username: str, timestamp: str, secret_block: str, signature: str
) -> None:
    state, _, _ = _exchange()

    assert srp.check(state, username, timestamp, secret_block, signature) is False


# degenerate or malformed SRP_A never starts an exchange


@pytest.mark.parametrize(
    "srp_a",
    [
        "0",
        "000",
        format(srp.N, "x"),
        format(2 * srp.N, "x"),
        format(srp.N + 1, "x"),  # ≥ N: no honest client sends it
        "",
        "0x1f",
        "-1f",
        " 1f",
        "1_f",
        "zz",
        "1" * (srp.MAX_SRP_A_DIGITS + 1),
    ],
    ids=["zero", "zeros", "N", "2N", "N+1", "empty", "0x", "negative", "space", "underscore", "not-hex", "too-long"],
)
def test_degenerate_or_malformed_srp_a_is_refused(srp_a: str) -> None:
    salt, verifier = srp.make_verifier(POOL_ID, USERNAME, PASSWORD)

    with pytest.raises(SrpError):
        srp.start(POOL_ID, USERNAME, salt, verifier, srp_a)


def test_pool_id_without_a_name_is_refused() -> None:
    with pytest.raises(SrpError):
        srp.make_verifier("us-east-1", USERNAME, PASSWORD)


# verifiers and states


def test_verifier_is_fixed_width_under_a_fresh_salt() -> None:
    first = srp.make_verifier(POOL_ID, USERNAME, PASSWORD)
    second = srp.make_verifier(POOL_ID, USERNAME, PASSWORD)

    assert [len(salt) for salt, _ in (first, second)] == [srp.SALT_BYTES, srp.SALT_BYTES]
    assert [len(verifier) for _, verifier in (first, second)] == [srp.N_BYTES, srp.N_BYTES]
    assert first[0] != second[0]
    assert first[1] != second[1]


def test_state_repr_shows_no_secret() -> None:
    state, _, _ = _exchange()

    shown = repr(state)

    assert str(state.server_secret) not in shown
    assert state.verifier.hex() not in shown
    assert repr(state.secret_block) not in shown


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda raw: b"",
        lambda raw: b"\x02" + raw[1:],  # unknown version
        lambda raw: raw[:-1],  # truncated
        lambda raw: raw + b"\x00",  # trailing byte
        lambda raw: raw + b"\x00\x00",  # an eighth field
    ],
    ids=["empty", "version", "truncated", "trailing", "extra-field"],
)
def test_corrupt_state_bytes_are_refused(corrupt: Any) -> None:
    state, _, _ = _exchange()

    with pytest.raises(SrpError):
        ServerState.from_bytes(corrupt(state.to_bytes()))


# timestamps are Cognito's


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)))
def test_timestamp_is_written_as_pycognito_writes_it(moment: datetime) -> None:
    text = srp.format_timestamp(moment)

    assert text == aws_srp.AWSSRP.get_cognito_formatted_timestamp(moment)
    assert srp.parse_timestamp(text) == moment.replace(microsecond=0, tzinfo=UTC)


@pytest.mark.parametrize(
    "timestamp",
    [
        "",
        "\ud800",
        "Tue Mar 05 09:04:01 UTC 2024",  # padded day
        "Tue Mar 5 9:04:01 UTC 2024",  # unpadded hour
        "Wed Mar 5 09:04:01 UTC 2024",  # wrong weekday
        "Fri Feb 30 09:04:01 UTC 2024",  # no such date
        "Tue Mar 5 09:04:01 UTC 2024\n",
        "Tue Mar 5 09:04:01 GMT 2024",
        "tue mar 5 09:04:01 UTC 2024",
        "Tue Mar \u0665 09:04:01 UTC 2024",  # a non-ASCII digit
    ],
)
def test_timestamp_not_in_cognitos_shape_is_not_read(timestamp: str) -> None:
    assert srp.parse_timestamp(timestamp) is None


def test_correctly_signed_timestamp_in_another_shape_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # AWS Cognito refuses a zero-padded day (pycognito's process_device_challenge strips it "required by AWS Cognito")
    monkeypatch.setattr(
        aws_srp.AWSSRP, "get_cognito_formatted_timestamp", staticmethod(lambda _: "Tue Mar 05 09:04:01 UTC 2024")
    )
    state, _, answer = _exchange()

    assert answer["TIMESTAMP"] == "Tue Mar 05 09:04:01 UTC 2024"
    assert not _check(state, answer)
    assert _check(state, {**answer, "TIMESTAMP": "Tue Mar 5 09:04:01 UTC 2024"}) is False  # signed text is what counts
