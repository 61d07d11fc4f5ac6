"""The policy file's ``provenance``: how a destination checks its sources' attestations.

Pure: reads files only. What the server does with a rule is tested in
tests/integration/test_server_provenance.py (issue 19 item 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgctl.errors import UsageError
from imgctl.promotion.environments import Environments, ProvenanceRule, load_policy

ENVIRONMENTS = Environments.from_environment(
    {"IMGCTL_REGISTRY_DEV": "dev.example.com/team", "IMGCTL_REGISTRY_PROD": "localhost:5000"}
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_rules_are_read_per_destination_with_paths_beside_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "require_signature:\n"
        "  prod: {keys: [release.pub]}\n"
        "provenance:\n"
        "  PROD:\n"
        "    keys: [builder.pub, 'awskms:///alias/builder']\n"
        "    keyless:\n"
        "      - {identity: ci@example.com, issuer: 'https://accounts.example.com'}\n"
        "    trusted_root: sigstore/trusted_root.json\n"
        "    required: true\n"
        "  dev: {keys: [/etc/imgctl/builder.pub]}\n",
    )
    policy = load_policy(path, ENVIRONMENTS)
    assert policy.provenance_rule("Prod") == ProvenanceRule(
        keys=(str(tmp_path / "builder.pub"), "awskms:///alias/builder"),
        keyless=(("ci@example.com", "https://accounts.example.com"),),
        trusted_root=str(tmp_path / "sigstore" / "trusted_root.json"),
        required=True,
    )
    # required: false is the default (verify-if-present).
    assert policy.provenance_rule("dev") == ProvenanceRule(keys=("/etc/imgctl/builder.pub",))
    assert policy.signature_rule("prod") is not None


def test_no_provenance_section_means_no_rule(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "destinations:\n  prod: [ops]\n"), ENVIRONMENTS)
    assert policy.provenance_rule("prod") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "provenance:\n  qa: {keys: [k.pub]}\n",
            "provenance names 'qa', which is not a configured environment",
            id="unknown-environment",
        ),
        pytest.param(
            "provenance: [prod]\n",
            "provenance must map environment names to rules",
            id="list",
        ),
        pytest.param(
            "provenance:\n  prod: {keys: [k.pub], identities: [x]}\n",
            "provenance.prod must be a mapping of keys, keyless, trusted_root and required "
            "(unknown: identities)",
            id="unknown-field",
        ),
        pytest.param(
            "provenance:\n  prod: {keys: [k.pub], require: true}\n",
            "(unknown: require)",
            id="misspelt-required",
        ),
        pytest.param(
            "provenance:\n  prod: {required: true}\n",
            "provenance.prod names no key and no keyless identity: no attestation could ever",
            id="no-trust",
        ),
        pytest.param(
            "provenance:\n  prod: {keys: [k.pub], required: 'yes please'}\n",
            "provenance.prod.required must be true or false",
            id="required-string",
        ),
        pytest.param(
            "provenance:\n  prod: {keys: [k.pub], required: 1}\n",
            "provenance.prod.required must be true or false",
            id="required-number",
        ),
        pytest.param(
            "provenance:\n  prod: {keys: k.pub}\n",
            "provenance.prod.keys must be a list of non-empty strings",
            id="keys-not-a-list",
        ),
        pytest.param(
            "provenance:\n  prod:\n    keyless: [{identity: ci@example.com, issuer: 'https://i'}]\n",
            "provenance.prod.keyless needs trusted_root",
            id="keyless-without-trusted-root",
        ),
        pytest.param(
            "provenance:\n  prod: {keyless: [{identity: ci@example.com}], trusted_root: t.json}\n",
            "provenance.prod.keyless must be a list of {identity: ..., issuer: ...} mappings",
            id="keyless-without-issuer",
        ),
        pytest.param(
            "provenance:\n  prod: {keys: [k.pub], trusted_root: 3}\n",
            "provenance.prod.trusted_root must be a file name",
            id="trusted-root-number",
        ),
        pytest.param(
            "provenance:\n  prod: {keys: [a.pub]}\n  ' PROD': {keys: [b.pub]}\n",
            "key ' PROD' is the same as key 'prod'",
            id="two-spellings",
        ),
        pytest.param(
            "provenance:\n  prod: true\n",
            "provenance.prod must be a mapping of keys, keyless, trusted_root and required",
            id="not-a-mapping",
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_policy(path, ENVIRONMENTS)
    assert str(path) in caught.value.message
    assert problem in caught.value.message, caught.value.message


def test_the_server_loads_a_rule_s_keys_and_trusted_root(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from imgctl.server.app import _provenance

    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "builder.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    policy = load_policy(
        write(tmp_path, "provenance:\n  prod: {keys: [builder.pub], required: true}\n"),
        ENVIRONMENTS,
    )
    gates = _provenance(policy, {})
    assert set(gates) == {"prod"}
    assert gates["prod"].required is True
    assert len(gates["prod"].policy.keys) == 1
    # A key that cannot be read stops the start naming the rule.
    policy = load_policy(
        write(tmp_path, "provenance:\n  prod: {keys: [missing.pub]}\n"), ENVIRONMENTS
    )
    with pytest.raises(UsageError) as caught:
        _provenance(policy, {})
    assert caught.value.message.startswith(
        f"policy file {tmp_path / 'policy.yaml'}: provenance.prod: "
    )
    assert json.dumps(caught.value.message)  # one line, no traceback object
