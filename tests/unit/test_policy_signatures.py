"""The policy file's ``require_signature``: which signature a destination's images need.

Pure: reads files only. What the server does with a rule is tested in
tests/integration/test_promotion_signing.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imgctl.errors import UsageError
from imgctl.promotion.environments import Environments, SignatureRule, load_policy

ENVIRONMENTS = Environments.from_environment(
    {"IMGCTL_REGISTRY_DEV": "dev.example.com/team", "IMGCTL_REGISTRY_PROD": "localhost:5000"}
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_rules_are_read_per_destination(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations:\n"
        "  prod: [ops@example.com]\n"
        "require_signature:\n"
        "  PROD:\n"
        "    keys: [release.pub, /etc/imgctl/other.pub, 'awskms:///alias/release']\n"
        "    keyless:\n"
        "      - {identity: ci@example.com, issuer: 'https://accounts.example.com'}\n"
        "    trusted_root: sigstore/trusted_root.json\n"
        "    identities: [dev.example.com/team/app]\n",
    )
    policy = load_policy(path, ENVIRONMENTS)
    rule = policy.signature_rule("Prod")
    assert rule == SignatureRule(
        keys=(str(tmp_path / "release.pub"), "/etc/imgctl/other.pub", "awskms:///alias/release"),
        keyless=(("ci@example.com", "https://accounts.example.com"),),
        identities=("dev.example.com/team/app",),
        trusted_root=str(tmp_path / "sigstore" / "trusted_root.json"),
    )
    assert policy.signature_rule("dev") is None
    assert policy.groups_for("prod") == ("ops@example.com",)


def test_a_file_with_only_signature_rules(tmp_path: Path) -> None:
    policy = load_policy(
        write(tmp_path, "require_signature:\n  prod: {keys: [k.pub]}\n"), ENVIRONMENTS
    )
    assert dict(policy.destinations) == {}
    assert policy.signature_rule("prod") == SignatureRule(keys=(str(tmp_path / "k.pub"),))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "require_signature:\n  qa: {keys: [k.pub]}\n",
            "require_signature names 'qa', which is not a configured environment",
            id="unknown-environment",
        ),
        pytest.param(
            "require_signature: [prod]\n",
            "require_signature must map environment names to rules",
            id="list",
        ),
        pytest.param(
            "require_signature:\n  prod: {}\n",
            "require_signature.prod names no key and no keyless identity",
            id="empty-rule",
        ),
        pytest.param(
            "require_signature:\n  prod: {keys: []}\n",
            "require_signature.prod names no key and no keyless identity",
            id="no-keys",
        ),
        pytest.param(
            "require_signature:\n  prod: {key: [k.pub]}\n",
            "require_signature.prod must be a mapping of keys, keyless, trusted_root and "
            "identities (unknown: key)",
            id="misspelt-field",
        ),
        pytest.param(
            "require_signature:\n  prod: [k.pub]\n",
            "require_signature.prod must be a mapping",
            id="list-rule",
        ),
        pytest.param(
            "require_signature:\n  prod: {keys: k.pub}\n",
            "require_signature.prod.keys must be a list of non-empty strings",
            id="string-keys",
        ),
        pytest.param(
            "require_signature:\n  prod: {keys: ['']}\n",
            "require_signature.prod.keys must be a list of non-empty strings",
            id="empty-key",
        ),
        pytest.param(
            "require_signature:\n  prod: {keys: [k.pub], identities: [7]}\n",
            "require_signature.prod.identities must be a list of non-empty strings",
            id="int-identity",
        ),
        pytest.param(
            "require_signature:\n  prod: {keyless: [{identity: ci@example.com}]}\n",
            "require_signature.prod.keyless must be a list of {identity: ..., issuer: ...}",
            id="keyless-without-issuer",
        ),
        pytest.param(
            "require_signature:\n  prod:\n    keyless:\n"
            "      - {identity: a, issuer: b, subject: c}\n",
            "require_signature.prod.keyless must be a list",
            id="keyless-extra-field",
        ),
        pytest.param(
            "require_signature:\n  prod: {keyless: {identity: a, issuer: b}}\n",
            "require_signature.prod.keyless must be a list",
            id="keyless-mapping",
        ),
        pytest.param(
            "require_signature:\n  prod: {keyless: [{identity: a, issuer: b}]}\n",
            "require_signature.prod.keyless needs trusted_root",
            id="keyless-without-trusted-root",
        ),
        pytest.param(
            "require_signature:\n  prod: {keys: [k.pub], trusted_root: [r.json]}\n",
            "require_signature.prod.trusted_root must be a file name",
            id="trusted-root-list",
        ),
        pytest.param(
            "require_signature:\n  prod: {keys: [a.pub]}\n  PROD: {keys: [b.pub]}\n",
            "differing only in case",
            id="twice-in-two-spellings",
        ),
        pytest.param(
            "destinations: {}\nrequire_signatures: {}\n",
            "unknown: require_signatures",
            id="misspelt-top-level-key",
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_policy(path, ENVIRONMENTS)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def _public_good_trusted_root() -> Path:
    import sigstore

    root = Path(sigstore.__file__).parent / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    return root / "trusted_root.json"


def test_a_keyless_rule_takes_its_roots_and_rekor_keys_from_the_trusted_root(
    tmp_path: Path,
) -> None:
    from cryptography import x509

    from imgctl.promotion.signing import rule_policy

    rule = SignatureRule(
        keyless=(("ci@example.com", "https://accounts.example.com"),),
        trusted_root=str(_public_good_trusted_root()),
    )
    [keyless] = rule_policy(rule, where="policy.yaml: require_signature.prod").keyless
    assert (keyless.identity, keyless.issuer) == ("ci@example.com", "https://accounts.example.com")
    assert x509.load_pem_x509_certificates(keyless.fulcio_roots)
    assert keyless.rekor_keys
    assert all(key.startswith(b"-----BEGIN PUBLIC KEY-----") for key in keyless.rekor_keys)

    missing = SignatureRule(keyless=rule.keyless, trusted_root=str(tmp_path / "nowhere.json"))
    with pytest.raises(UsageError) as caught:
        rule_policy(missing, where="policy.yaml: require_signature.prod")
    assert str(caught.value).startswith(
        f"policy.yaml: require_signature.prod: trusted root {tmp_path / 'nowhere.json'}: "
    )
    bogus = tmp_path / "bogus.json"
    bogus.write_text("{}")
    with pytest.raises(UsageError, match=r"^policy\.yaml: require_signature\.prod: trusted root"):
        rule_policy(
            SignatureRule(keyless=rule.keyless, trusted_root=str(bogus)),
            where="policy.yaml: require_signature.prod",
        )
