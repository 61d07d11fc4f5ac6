"""Keyless signing: a Fulcio certificate for an OIDC token, the signature logged in Rekor.

sigstore-python does the protocol (an ephemeral P-256 key, the certificate request, the SCT
check, the hashedrekord entry); this module turns its bundle into cosign's layer annotations:
the leaf certificate, the chain (the trust config's Fulcio certificates) and the old-style
Rekor bundle ``{SignedEntryTimestamp, Payload: {body, integratedTime, logIndex, logID}}`` that
``_keyless.check_keyless`` and cosign verify offline. That needs Rekor v1's signed entry
timestamp: a log that only gives inclusion proofs (Rekor v2) cannot make such a signature.

The token comes from ``SIGSTORE_ID_TOKEN`` (as cosign and sigstore-python read it); nothing here
opens a browser. Every failure of the services is a SignatureError or TransportError naming the
step, and happens before ``sign_image`` writes anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization

from imgctl.errors import KeyRefError, SignatureError, TransportError
from imgctl.trust._json import Malformed, b64decode, go_json
from imgctl.trust._keyless import BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION
from imgctl.trust._keys import PublicKey

if TYPE_CHECKING:
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import Signer as SigstoreSigner

__all__ = ["KeylessSigner", "keyless_signer"]

TOKEN_VARIABLE = "SIGSTORE_ID_TOKEN"  # noqa: S105 - the name of the variable, not a token
MAX_TRUST_CONFIG_BYTES = 1024 * 1024


def _failure(step: str, exc: BaseException) -> Exception:
    """A service failure as imgctl's error: unreachable is TransportError, the rest Signature."""
    text = str(exc).strip().splitlines()
    detail = text[0][:300] if text else type(exc).__name__
    import requests  # sigstore's HTTP client, so installed with it

    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return TransportError(f"keyless signing: {step}: cannot reach the service ({detail})")
    return SignatureError(f"keyless signing: {step} failed ({detail})")


class KeylessSigner:
    """A ``Signer`` whose key lives for one run and whose certificate Fulcio issues."""

    def __init__(self, token: IdentityToken, config: ClientTrustConfig) -> None:
        self._token = token
        self._config = config
        self._signer: SigstoreSigner | None = None
        self._bundles: dict[bytes, Bundle] = {}

    @property
    def ref(self) -> str:
        """``keyless:<identity>``: who the certificate will name."""
        return f"keyless:{self._token.identity}"

    def _sigstore(self) -> SigstoreSigner:
        if self._signer is None:
            from sigstore.sign import Signer, SigningContext

            try:
                context = SigningContext.from_trust_config(self._config)
                # cache=True: one key and certificate for the whole run (asks Fulcio now).
                self._signer = Signer(self._token, context, cache=True)
            except Exception as exc:  # sigstore's failures have no common base class
                raise _failure("getting a certificate from Fulcio", exc) from None
        return self._signer

    def _certificate(self) -> Any:
        # sigstore has no public accessor for the certificate before a signature is made;
        # with cache=True this returns the one Fulcio issued at construction, no request.
        return self._sigstore()._signing_cert()

    def public_key(self) -> PublicKey:
        """The ephemeral key Fulcio certified."""
        try:
            certificate = self._certificate()
        except (SignatureError, TransportError):
            raise
        except Exception as exc:
            raise _failure("getting a certificate from Fulcio", exc) from None
        return PublicKey(key=certificate.public_key(), ref=self.ref)

    def sign(self, payload: bytes) -> bytes:
        """Sign and log ``payload`` in Rekor; the bundle is kept for ``layer_annotations``."""
        try:
            bundle = self._sigstore().sign_artifact(payload)
        except (SignatureError, TransportError):
            raise
        except Exception as exc:
            raise _failure("signing and logging in Rekor", exc) from None
        self._bundles[payload] = bundle
        return bundle.signature

    def layer_annotations(self, payload: bytes, signature: bytes) -> Mapping[str, str]:
        """The cosign certificate, chain and Rekor bundle annotations for the last signature."""
        bundle = self._bundles.get(payload)
        if bundle is None or bundle.signature != signature:
            raise SignatureError("keyless signing: no log entry for this signature")
        certificate = bundle.signing_certificate.public_bytes(serialization.Encoding.PEM)
        chain = b"".join(
            cert.public_bytes(serialization.Encoding.PEM)
            for cert in self._config.trusted_root.get_fulcio_certs()
        )
        return {
            CERTIFICATE_ANNOTATION: certificate.decode(),
            CHAIN_ANNOTATION: chain.decode(),
            BUNDLE_ANNOTATION: cosign_bundle(bundle.to_json()),
        }


def cosign_bundle(sigstore_bundle_json: str) -> str:
    """The cosign Rekor bundle annotation made from a sigstore bundle's (JSON) log entry."""
    try:
        doc = json.loads(sigstore_bundle_json)
        entries = doc["verificationMaterial"]["tlogEntries"]
        if not isinstance(entries, list) or len(entries) != 1:
            raise Malformed("the bundle does not have exactly one log entry")
        entry = entries[0]
        promise = entry.get("inclusionPromise") or {}
        set_ = promise.get("signedEntryTimestamp")
        if not isinstance(set_, str) or "integratedTime" not in entry:
            raise SignatureError(
                "keyless signing: the transparency log gave no signed entry timestamp",
                hint="cosign's keyless layer needs a Rekor v1 log; a Rekor v2 log only gives "
                "inclusion proofs",
            )
        payload = {
            "body": entry["canonicalizedBody"],
            "integratedTime": int(entry["integratedTime"]),
            "logIndex": int(entry["logIndex"]),
            "logID": b64decode(entry["logId"]["keyId"], "logId").hex(),
        }
    except (KeyError, TypeError, ValueError, Malformed) as exc:
        raise SignatureError(f"keyless signing: unexpected log entry ({exc})") from None
    return go_json({"SignedEntryTimestamp": set_, "Payload": payload}).decode()


def keyless_signer(environ: Mapping[str, str], trust_config: Path | None) -> KeylessSigner:
    """A keyless signer for the token in ``SIGSTORE_ID_TOKEN``; KeyRefError if there is none."""
    raw = environ.get(TOKEN_VARIABLE, "").strip()
    if not raw:
        raise KeyRefError(
            f"--keyless needs an OIDC identity token in ${TOKEN_VARIABLE}",
            hint="get one from your CI's OIDC provider (audience 'sigstore'), or sign with --key",
        )
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityError, IdentityToken

    try:
        token = IdentityToken(raw)
    except IdentityError as exc:
        raise KeyRefError(
            f"${TOKEN_VARIABLE} is not a usable identity token: {exc}",
            hint="it must be an unexpired OIDC token with audience 'sigstore'",
        ) from None
    try:
        if trust_config is None:
            config = ClientTrustConfig.production()
        else:
            with trust_config.open("rb") as handle:
                data = handle.read(MAX_TRUST_CONFIG_BYTES + 1)
            if len(data) > MAX_TRUST_CONFIG_BYTES:
                raise KeyRefError(f"trust config {trust_config}: larger than 1 MiB")
            config = ClientTrustConfig.from_json(data.decode())
    except KeyRefError:
        raise
    except OSError as exc:
        raise KeyRefError(f"trust config {trust_config}: {exc.strerror or exc}") from None
    except Exception as exc:  # TUF and pydantic failures share no base class
        raise _failure("loading the sigstore trust config", exc) from None
    return KeylessSigner(token, config)
