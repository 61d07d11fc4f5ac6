"""Attestations offline: the promotion statement's shape, DSSE envelopes and their verdicts.

Two checks come from outside imgctl: the statement is validated against a JSON Schema written
from the in-toto Statement v1 and SLSA Provenance v1 specifications (tests/data/in-toto/) and by
in-toto-attestation's own validators; the envelope is verified by securesystemslib's DSSE code
with a key built straight from the public PEM, not through imgctl's adapter.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from imgctl.oci import Digest, Reference
from imgctl.trust import (
    DSSE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    PROMOTION_PREDICATE_TYPE,
    SLSA_PROVENANCE_V1,
    AttestationCheck,
    PromotionFacts,
    PublicKey,
    Signer,
    TrustPolicy,
    load_public_key,
    load_signer,
    promotion_statement,
    verify_envelope,
)
from imgctl.trust._attest import MAX_ENVELOPE_BYTES, PROMOTION_BUILD_TYPE, sign_envelope

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "in-toto"
DIGEST = Digest.of(b"the promoted image manifest")
OTHER = Digest.of(b"another image manifest")
IMAGE = Reference.parse("prod.example:5000/team/app").with_digest(DIGEST)


def facts(**changes: Any) -> PromotionFacts:
    started = datetime(2026, 12, 6, 9, 30, 0, 250000, tzinfo=UTC)
    values: dict[str, Any] = {
        "source": Reference.parse("staging.example/dev/app").with_digest(DIGEST),
        "destination": Reference.parse(f"prod.example:5000/team/app:v1.2@{DIGEST}"),
        "builder": "urn:imgctl:server:6a1f",
        "started": started,
        "finished": started + timedelta(seconds=2),
        "requested_by": "alice@example.com",
        "request_id": "4826e0f942da49cb",
    }
    values.update(changes)
    return PromotionFacts(**values)


@pytest.fixture(scope="module")
def schema() -> jsonschema.protocols.Validator:
    document = json.loads((SCHEMA / "statement-v1-slsa-provenance-v1.schema.json").read_text())
    validator_class = jsonschema.validators.validator_for(document)
    validator_class.check_schema(document)
    return validator_class(document, format_checker=validator_class.FORMAT_CHECKER)


# ---------------------------------------------------------------------------------- keys


def _write(directory: Path, name: str, private: Any) -> tuple[Path, Path]:
    key_path, pub_path = directory / f"{name}.pem", directory / f"{name}.pub"
    key_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_path, pub_path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Signer, PublicKey]]:
    directory = tmp_path_factory.mktemp("attest-unit-keys")
    makers: dict[str, Callable[[], Any]] = {
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p256-other": lambda: ec.generate_private_key(ec.SECP256R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
        "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    made: dict[str, tuple[Signer, PublicKey]] = {}

    def get(name: str) -> tuple[Signer, PublicKey]:
        if name not in made:
            key_path, pub_path = _write(directory, name, makers[name]())
            made[name] = (load_signer(str(key_path)), load_public_key(str(pub_path)))
        return made[name]

    return get


def envelope_for(statement: dict[str, Any], signer: Signer) -> bytes:
    return sign_envelope(json.dumps(statement).encode(), signer, signer.public_key())


def with_keys(*public: PublicKey) -> TrustPolicy:
    return TrustPolicy(keys=public)


# ---------------------------------------------------------------------------------- statement


def test_the_promotion_statement_is_an_in_toto_v1_statement_with_a_slsa_v1_predicate(
    schema: jsonschema.protocols.Validator,
) -> None:
    statement = promotion_statement(facts())
    errors = sorted(schema.iter_errors(statement), key=str)
    assert not errors, [e.message for e in errors]
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [
        {"name": "prod.example:5000/team/app", "digest": {"sha256": DIGEST.hex}}
    ]
    assert statement["predicateType"] == SLSA_PROVENANCE_V1
    predicate = statement["predicate"]
    assert predicate["buildDefinition"] == {
        "buildType": PROMOTION_BUILD_TYPE,
        "externalParameters": {
            "source": {"registry": "staging.example", "repository": "dev/app"},
            "destination": {
                "registry": "prod.example:5000",
                "repository": "team/app",
                "tag": "v1.2",
            },
            "digest": str(DIGEST),
        },
        "internalParameters": {"requestId": "4826e0f942da49cb", "requestedBy": "alice@example.com"},
    }
    assert predicate["runDetails"] == {
        "builder": {"id": "urn:imgctl:server:6a1f"},
        "metadata": {
            "invocationId": "4826e0f942da49cb",
            "startedOn": "2026-12-06T09:30:00.250Z",
            "finishedOn": "2026-12-06T09:30:02.250Z",
        },
    }


def test_in_toto_attestations_own_validators_accept_the_statement_and_the_predicate() -> None:
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    statement = promotion_statement(facts(requested_by=None, request_id=None))
    # ParseDict refuses unknown fields: every key is one the protobuf schema defines.
    message = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(message).validate()
    provenance = json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    assert provenance.build_definition.build_type == PROMOTION_BUILD_TYPE
    assert "internalParameters" not in statement["predicate"]["buildDefinition"]
    assert "invocationId" not in statement["predicate"]["runDetails"]["metadata"]


def test_the_schema_refuses_what_the_specifications_refuse(
    schema: jsonschema.protocols.Validator,
) -> None:
    good = promotion_statement(facts())
    broken: list[dict[str, Any]] = []
    for change in (
        lambda s: s.update(subject=[]),
        lambda s: s["subject"][0].pop("digest"),
        lambda s: s["subject"][0]["digest"].update(sha256="ABC"),
        lambda s: s["predicate"]["buildDefinition"].pop("buildType"),
        lambda s: s["predicate"]["runDetails"]["builder"].update(id="not a uri"),
        lambda s: s["predicate"]["runDetails"]["metadata"].update(startedOn="2026-12-06 09:30"),
        lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"),
    ):
        copy = json.loads(json.dumps(good))
        change(copy)
        broken.append(copy)
    assert [schema.is_valid(s) for s in broken] == [False] * len(broken)


def test_a_naive_time_is_utc_and_digests_must_agree() -> None:
    naive = promotion_statement(facts(started=datetime(2026, 1, 2, 3, 4, 5)))
    assert naive["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-01-02T03:04:05Z"
    with pytest.raises(ValueError, match="digests differ"):
        promotion_statement(facts(source=Reference.parse("a.example/x").with_digest(OTHER)))


# ---------------------------------------------------------------------------------- envelope


@pytest.mark.parametrize("kind", ["p256", "ed25519", "rsa"])
def test_an_envelope_verifies_with_securesystemslib_given_only_the_public_pem(
    keys: Callable[[str], tuple[Signer, PublicKey]], kind: str
) -> None:
    signer, public = keys(kind)
    statement = promotion_statement(facts())
    envelope = envelope_for(statement, signer)
    doc = json.loads(envelope)
    assert list(doc) == ["payloadType", "payload", "signatures"]
    assert doc["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    assert json.loads(base64.b64decode(doc["payload"])) == statement
    [signature] = doc["signatures"]
    assert signature["keyid"] == ""

    pem = public.pem()
    loaded = serialization.load_pem_public_key(pem)
    if kind == "ed25519":
        raw = loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        independent = SSlibKey("", "ed25519", "ed25519", {"public": raw.hex()})
    elif kind == "rsa":
        independent = SSlibKey("", "rsa", "rsa-pkcs1v15-sha256", {"public": pem.decode()})
    else:
        independent = SSlibKey("", "ecdsa", "ecdsa-sha2-nistp256", {"public": pem.decode()})
    assert Envelope.from_dict(json.loads(envelope)).verify([independent], 1) == {"": independent}

    check = verify_envelope(envelope, {}, IMAGE, with_keys(public))
    assert (check.ok, check.reason, check.signer) == (
        True,
        f"verified with key {public.ref}",
        public.ref,
    )
    assert check.statement == statement
    assert check.predicate_type == SLSA_PROVENANCE_V1
    assert check.layer == Digest.of(envelope)


def _flip(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_one_changed_byte_is_refused_by_imgctl_and_by_securesystemslib(
    keys: Callable[[str], tuple[Signer, PublicKey]], where: str
) -> None:
    signer, public = keys("p256")
    statement = promotion_statement(facts())
    doc = json.loads(envelope_for(statement, signer))
    if where == "payload":
        # One byte of the builder id: still JSON, still a statement for this digest.
        payload = base64.b64decode(doc["payload"])
        index = payload.index(b"urn:imgctl:server:6a1f") + len(b"urn:imgctl:server:6a1")
        doc["payload"] = _flip(doc["payload"], index)
        assert json.loads(base64.b64decode(doc["payload"]))["subject"] == statement["subject"]
    else:
        doc["signatures"][0]["sig"] = _flip(doc["signatures"][0]["sig"], -1)
    tampered = json.dumps(doc).encode()
    check = verify_envelope(tampered, {}, IMAGE, with_keys(public))
    assert not check.ok
    assert check.reason == (
        f"the envelope's signature does not verify with {public.ref} "
        "(signed by another key, or the envelope was changed)"
    )
    independent = SSlibKey("", "ecdsa", "ecdsa-sha2-nistp256", {"public": public.pem().decode()})
    with pytest.raises(VerificationError):
        Envelope.from_dict(json.loads(tampered)).verify([independent], 1)


def test_another_key_and_no_key(keys: Callable[[str], tuple[Signer, PublicKey]]) -> None:
    signer, public = keys("p256")
    _, other = keys("p256-other")
    envelope = envelope_for(promotion_statement(facts()), signer)
    assert not verify_envelope(envelope, {}, IMAGE, with_keys(other)).ok
    # Any of several keys will do.
    assert verify_envelope(envelope, {}, IMAGE, with_keys(other, public)).signer == public.ref
    unjudged = verify_envelope(envelope, {}, IMAGE, TrustPolicy())
    assert (unjudged.ok, unjudged.reason) == (False, "not verified: no key given")
    assert unjudged.statement is not None


def test_a_statement_for_another_digest_is_refused_even_when_well_signed(
    keys: Callable[[str], tuple[Signer, PublicKey]],
) -> None:
    signer, public = keys("p256")
    other = Reference.parse("prod.example:5000/team/app").with_digest(OTHER)
    envelope = envelope_for(promotion_statement(facts()), signer)
    check = verify_envelope(envelope, {}, other, with_keys(public))
    assert (check.ok, check.reason) == (False, f"statement is for {DIGEST}")
    # Without keys the mismatch is still the reason given.
    assert (
        verify_envelope(envelope, {}, other, TrustPolicy()).reason == f"statement is for {DIGEST}"
    )


def test_the_payload_type_must_be_in_totos(keys: Callable[[str], tuple[Signer, PublicKey]]) -> None:
    from securesystemslib.dsse import Envelope as SslibEnvelope

    from imgctl.trust._attest import _signer_adapter

    signer, public = keys("p256")
    payload = json.dumps(promotion_statement(facts())).encode()
    # A correctly signed envelope of another payload type.
    envelope = SslibEnvelope(payload, "application/json", {})
    envelope.sign(_signer_adapter(signer, public))
    data = json.dumps(envelope.to_dict()).encode()
    check = verify_envelope(data, {}, IMAGE, with_keys(public))
    assert (check.ok, check.reason) == (
        False,
        "payloadType is 'application/json', not 'application/vnd.in-toto+json'",
    )


def test_the_predicate_type_is_the_layer_annotation_else_the_statements(
    keys: Callable[[str], tuple[Signer, PublicKey]],
) -> None:
    signer, public = keys("p256")
    envelope = envelope_for(promotion_statement(facts()), signer)
    annotated = verify_envelope(
        envelope, {"predicateType": PROMOTION_PREDICATE_TYPE}, IMAGE, with_keys(public)
    )
    assert annotated.predicate_type == PROMOTION_PREDICATE_TYPE
    assert annotated.ok
    assert verify_envelope(envelope, {}, IMAGE, with_keys(public)).predicate_type == (
        SLSA_PROVENANCE_V1
    )


def test_statement_v01_is_read_and_unknown_types_are_refused(
    keys: Callable[[str], tuple[Signer, PublicKey]],
) -> None:
    signer, public = keys("p256")
    old = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": "build", "digest": {"sha256": DIGEST.hex}}],
        "predicate": {"builder": {"id": "https://ci.example"}},
    }
    assert verify_envelope(envelope_for(old, signer), {}, IMAGE, with_keys(public)).ok
    future = dict(old, _type="https://in-toto.io/Statement/v2")
    check = verify_envelope(envelope_for(future, signer), {}, IMAGE, with_keys(public))
    assert (check.ok, check.reason) == (
        False,
        "malformed statement _type is 'https://in-toto.io/Statement/v2', not "
        "'https://in-toto.io/Statement/v1'",
    )
    # A v1 statement in-toto-attestation's validator refuses (no subject digest).
    bad = {**old, "_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "x"}]}
    refused = verify_envelope(envelope_for(bad, signer), {}, IMAGE, with_keys(public))
    assert not refused.ok
    assert refused.reason.startswith("malformed statement: At least one digest required")


def _garbled(keys: Callable[[str], tuple[Signer, PublicKey]]) -> dict[str, tuple[bytes, str]]:
    signer, _ = keys("p256")
    good = json.loads(envelope_for(promotion_statement(facts()), signer))
    sig = good["signatures"][0]["sig"]

    def env(**fields: Any) -> bytes:
        return json.dumps({**good, **fields}).encode()

    return {
        "not json": (b"\x00\x01garbage", "malformed envelope: not JSON"),
        "duplicate key": (
            env()[:-1] + b', "payloadType": "text/plain"}',
            "malformed envelope: duplicate key 'payloadType'",
        ),
        "array": (b"[]", "malformed envelope is not a JSON object"),
        "missing payload": (
            json.dumps({k: v for k, v in good.items() if k != "payload"}).encode(),
            "malformed envelope has no payload",
        ),
        "extra field": (env(extra=1), "malformed envelope has unexpected extra"),
        "bad base64": (env(payload="!!!"), "malformed envelope.payload is not base64"),
        "no signatures": (env(signatures=[]), "malformed envelope has no signatures"),
        "too many signatures": (
            env(signatures=[{"keyid": "", "sig": sig}] * 17),
            "malformed envelope has 17 signatures",
        ),
        "signature not an object": (
            env(signatures=["x"]),
            "malformed envelope.signatures[0] is not a JSON object",
        ),
        "statement not json": (
            env(payload=base64.b64encode(b"{not json").decode()),
            "malformed statement: not JSON",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not json",
        "duplicate key",
        "array",
        "missing payload",
        "extra field",
        "bad base64",
        "no signatures",
        "too many signatures",
        "signature not an object",
        "statement not json",
    ],
)
def test_a_garbled_envelope_gets_a_reason_not_a_traceback(
    keys: Callable[[str], tuple[Signer, PublicKey]], case: str
) -> None:
    _, public = keys("p256")
    data, reason = _garbled(keys)[case]
    check = verify_envelope(data, {}, IMAGE, with_keys(public))
    assert isinstance(check, AttestationCheck)
    assert not check.ok
    assert check.reason.startswith(reason), check.reason


def test_a_huge_envelope_or_annotation_is_refused_unread(
    keys: Callable[[str], tuple[Signer, PublicKey]],
) -> None:
    _, public = keys("p256")
    huge = b"{" + b" " * MAX_ENVELOPE_BYTES + b"}"
    check = verify_envelope(huge, {}, IMAGE, with_keys(public))
    assert check.reason == f"envelope is {len(huge)} bytes; refusing more than 16 MiB"
    signer, _ = keys("p256")
    envelope = envelope_for(promotion_statement(facts()), signer)
    big = verify_envelope(envelope, {"note": "x" * (64 * 1024 + 1)}, IMAGE, with_keys(public))
    assert big.reason == "annotation note is 65537 bytes; refusing more than 64 KiB"


def test_as_dict_is_json_ready(keys: Callable[[str], tuple[Signer, PublicKey]]) -> None:
    signer, public = keys("p256")
    envelope = envelope_for(promotion_statement(facts()), signer)
    check = verify_envelope(envelope, {"predicateType": "x:y"}, IMAGE, with_keys(public))
    document = json.loads(json.dumps(check.as_dict()))
    assert document["layer"] == str(Digest.of(envelope))
    assert document["verified"] is True
    assert document["predicateType"] == "x:y"
    assert document["statement"]["subject"][0]["digest"]["sha256"] == DIGEST.hex
    assert DSSE_MEDIA_TYPE == "application/vnd.dsse.envelope.v1+json"


# ------------------------------------------------------------- a real cosign attestation

COSIGN = Path(__file__).resolve().parents[1] / "data" / "cosign" / "sigstore-cosign"
EMPTY_IMAGE = Digest.parse(
    "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
)
CODY, GITHUB = "cody@soyland.com", "https://github.com/login/oauth"


def cosign_policy(identity: str = CODY, issuer: str = GITHUB) -> TrustPolicy:
    from imgctl.trust import keyless_identity

    wanted = keyless_identity(identity, issuer, trusted_root=COSIGN / "trusted_root_pgi.json")
    assert wanted is not None
    return TrustPolicy(keyless=(wanted,))


def cosign_check(
    bundle: bytes, policy: TrustPolicy, digest: Digest = EMPTY_IMAGE
) -> AttestationCheck:
    from imgctl.oci import Descriptor
    from imgctl.trust._attest import _judge_layer

    media_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    descriptor = Descriptor(media_type, Digest.of(bundle), len(bundle))
    image = Reference.parse("127.0.0.1:60943/repo").with_digest(digest)
    annotations = {
        "dev.sigstore.bundle.predicateType": "https://cosign.sigstore.dev/attestation/v1"
    }
    return _judge_layer(descriptor, bundle, image, policy, annotations)


def test_a_cosign_made_keyless_attestation_verifies_offline() -> None:
    bundle = (COSIGN / "oci-attestation.sigstore.json").read_bytes()
    check = cosign_check(bundle, cosign_policy())
    assert (check.ok, check.reason, check.signer) == (
        True,
        f"verified keyless: {CODY} ({GITHUB})",
        CODY,
    )
    assert check.predicate_type == "https://cosign.sigstore.dev/attestation/v1"
    assert check.statement is not None
    assert check.statement["_type"] == "https://in-toto.io/Statement/v0.1"
    assert check.layer == Digest.of(bundle)


def test_the_cosign_attestation_is_refused_for_another_identity_digest_or_changed_byte() -> None:
    bundle = (COSIGN / "oci-attestation.sigstore.json").read_bytes()
    other = cosign_check(bundle, cosign_policy(identity="mallory@example.com"))
    assert not other.ok
    assert other.reason.startswith("certificate identity refused")
    issuer = cosign_check(bundle, cosign_policy(issuer="https://accounts.google.com"))
    assert not issuer.ok
    digest = cosign_check(bundle, cosign_policy(), digest=DIGEST)
    assert (digest.ok, digest.reason) == (False, f"statement is for {EMPTY_IMAGE}")

    doc = json.loads(bundle)
    envelope = doc["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    # The predicate's data, one byte: the statement still parses and names the same digest.
    index = payload.index(b'\\"foo') + 3
    changed = payload[:index] + b"g" + payload[index + 1 :]
    envelope["payload"] = base64.b64encode(changed).decode()
    tampered = cosign_check(json.dumps(doc).encode(), cosign_policy())
    assert not tampered.ok
    # The entry is checked before the signature: the log names another payload.
    assert tampered.reason == "the Rekor entry is for another payload"

    doc = json.loads(bundle)
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)
    late = cosign_check(json.dumps(doc).encode(), cosign_policy())
    assert (late.ok, late.reason) == (
        False,
        "the Rekor bundle is not signed by a trusted Rekor key",
    )

    unjudged = cosign_check(bundle, TrustPolicy())
    assert (unjudged.ok, unjudged.reason) == (False, "not verified: no key given")


def test_a_bundle_without_an_envelope_is_reported_malformed() -> None:
    doc = json.loads((COSIGN / "oci-attestation.sigstore.json").read_bytes())
    del doc["dsseEnvelope"]
    doc["messageSignature"] = {"messageDigest": {}, "signature": ""}
    check = cosign_check(json.dumps(doc).encode(), cosign_policy())
    assert (check.ok, check.reason) == (
        False,
        "malformed bundle holds no DSSE envelope (a message signature, not an attestation)",
    )
