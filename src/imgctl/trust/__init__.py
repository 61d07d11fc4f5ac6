"""Keys, cosign signatures and their verification: what makes a promotion provable.

``load_signer`` / ``load_public_key`` turn a key reference (a cosign key file, a PEM key, a KMS
URI such as ``awskms://``) into something that signs or verifies (``_keys``; KMS providers in
``_kms``). ``sign_image`` writes a cosign simple-signing signature under ``sha256-<hex>.sig``,
appended to what is there; ``verify_image`` checks every signature of a digest against a
``TrustPolicy`` (keys and keyless identities) and says why each one did or did not verify
(``_cosign``). ``attest_image`` signs an in-toto statement (``promotion_statement``: SLSA v1
provenance of a promotion) into a DSSE envelope appended under ``sha256-<hex>.att``;
``verify_envelope`` / ``list_attestations`` judge attestations from ``.att`` and referrers
(``_attest``; the append and read-back shared with signatures in ``_attach``). Layouts and wire
formats: docs/signing.md.
"""

from imgctl.trust._attest import (
    DSSE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    PROMOTION_PREDICATE_TYPE,
    SLSA_PROVENANCE_V1,
    AttestationCheck,
    AttestOutcome,
    PromotionFacts,
    attest_image,
    list_attestations,
    promotion_statement,
    verify_envelope,
)
from imgctl.trust._cosign import (
    SIGNATURE_MEDIA_TYPE,
    KeylessIdentity,
    SignatureCheck,
    SignOutcome,
    TrustPolicy,
    VerificationReport,
    sign_image,
    simple_signing_payload,
    verify_image,
    verify_signature_layer,
)
from imgctl.trust._keys import PublicKey, Signer, generate_key_pair, load_public_key, load_signer
from imgctl.trust._material import keyless_identity, read_trusted_root

__all__ = [
    "DSSE_MEDIA_TYPE",
    "IN_TOTO_PAYLOAD_TYPE",
    "PROMOTION_PREDICATE_TYPE",
    "SIGNATURE_MEDIA_TYPE",
    "SLSA_PROVENANCE_V1",
    "AttestOutcome",
    "AttestationCheck",
    "KeylessIdentity",
    "PromotionFacts",
    "PublicKey",
    "SignOutcome",
    "SignatureCheck",
    "Signer",
    "TrustPolicy",
    "VerificationReport",
    "attest_image",
    "generate_key_pair",
    "keyless_identity",
    "list_attestations",
    "load_public_key",
    "load_signer",
    "promotion_statement",
    "read_trusted_root",
    "sign_image",
    "simple_signing_payload",
    "verify_envelope",
    "verify_image",
    "verify_signature_layer",
]
