"""awskms:// key references against moto's standalone server: sign, verify, errors, endpoints."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
import trustme
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from imgctl.errors import KeyRefError, SignatureError
from imgctl.trust import load_public_key, load_signer
from imgctl.trust._kms import create_kms_key

from ..support.moto import MOTO_SERVER, AwsProxy, MotoServer, free_port

PAYLOAD = (
    b'{"critical":{"identity":{"docker-reference":"registry.example/app"},"image":'
    b'{"docker-manifest-digest":"sha256:' + b"ab" * 32 + b'"},"type":"cosign container image '
    b'signature"},"optional":null}'
)
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


def env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "AKIAIMGCTLKMSTEST01",
        "AWS_SECRET_ACCESS_KEY": "kms-secret-never-print",
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_KMS": endpoint,
        **extra,
    }


def kms(endpoint: str) -> Any:
    """A boto3 client for the test's own setup (a different code path from imgctl's)."""
    return boto3.client(
        "kms",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )


def create_key(
    endpoint: str, spec: str, usage: str = "SIGN_VERIFY", alias: str | None = None
) -> str:
    client = kms(endpoint)
    key_id = str(client.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"])
    if alias:
        client.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def independent_public_key(endpoint: str, key_id: str) -> Any:
    der = kms(endpoint).get_public_key(KeyId=key_id)["PublicKey"]
    return serialization.load_der_public_key(der)


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        ("ECC_NIST_P256", lambda k, s, p: k.verify(s, p, ec.ECDSA(hashes.SHA256()))),
        ("ECC_NIST_P384", lambda k, s, p: k.verify(s, p, ec.ECDSA(hashes.SHA384()))),
        ("RSA_2048", lambda k, s, p: k.verify(s, p, padding.PKCS1v15(), hashes.SHA256())),
        ("RSA_4096", lambda k, s, p: k.verify(s, p, padding.PKCS1v15(), hashes.SHA256())),
    ],
)
def test_sign_with_kms_key_and_verify(moto: MotoServer, spec: str, check: Any) -> None:
    key_id = create_key(moto.url, spec)
    ref = f"awskms:///{key_id}"
    signer = load_signer(ref, environ=env(moto.url))
    assert signer.ref == ref
    signature = signer.sign(PAYLOAD)
    # The public key as KMS gives it to anyone, and through imgctl's own references.
    check(independent_public_key(moto.url, key_id), signature, PAYLOAD)
    signer.public_key().verify(PAYLOAD, signature)
    public = load_public_key(ref, environ=env(moto.url))
    public.verify(PAYLOAD, signature)
    assert public.ref == ref
    assert public.key_id == signer.public_key().key_id
    with pytest.raises(SignatureError, match="does not verify"):
        public.verify(PAYLOAD.replace(b"ab", b"cd", 1), signature)


def test_alias_and_arn_references(moto: MotoServer) -> None:
    key_id = create_key(moto.url, "ECC_NIST_P256", alias="alias/release-signing")
    by_id = load_public_key(f"awskms:///{key_id}", environ=env(moto.url))
    refs = [
        "awskms:///alias/release-signing",
        f"awskms:///arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}",
        f"awskms:///arn:aws:kms:{REGION}:{ACCOUNT}:alias/release-signing",
    ]
    for ref in refs:
        signer = load_signer(ref, environ=env(moto.url))
        assert signer.public_key().same_key(by_id)
        by_id.verify(PAYLOAD, signer.sign(PAYLOAD))


def test_region_comes_from_the_arn(moto: MotoServer) -> None:
    client = boto3.client(
        "kms",
        region_name="eu-west-1",
        endpoint_url=moto.url,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    key_id = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
        "KeyId"
    ]
    # AWS_REGION says us-east-1, where this key does not exist; the ARN's region wins.
    with pytest.raises(KeyRefError, match="no such KMS key"):
        load_signer(f"awskms:///{key_id}", environ=env(moto.url))
    ref = f"awskms:///arn:aws:kms:eu-west-1:{ACCOUNT}:key/{key_id}"
    signer = load_signer(ref, environ=env(moto.url))
    signer.public_key().verify(PAYLOAD, signer.sign(PAYLOAD))


def test_missing_key_and_alias(moto: MotoServer) -> None:
    for ref in ("awskms:///alias/no-such-alias", "awskms:///11111111-2222-3333-4444-555555555555"):
        with pytest.raises(KeyRefError, match="no such KMS key") as info:
            load_signer(ref, environ=env(moto.url))
        assert info.value.hint is not None
        assert "AWS_REGION" in info.value.hint
        with pytest.raises(KeyRefError, match="no such KMS key"):
            load_public_key(ref, environ=env(moto.url))


def test_keys_that_cannot_sign(moto: MotoServer) -> None:
    encrypt = create_key(moto.url, "SYMMETRIC_DEFAULT", usage="ENCRYPT_DECRYPT")
    with pytest.raises(KeyRefError, match="usage is ENCRYPT_DECRYPT, not SIGN_VERIFY"):
        load_signer(f"awskms:///{encrypt}", environ=env(moto.url))
    k1 = create_key(moto.url, "ECC_SECG_P256K1")
    with pytest.raises(KeyRefError, match="key spec ECC_SECG_P256K1 is not supported"):
        load_signer(f"awskms:///{k1}", environ=env(moto.url))


def test_unreachable_kms(moto: MotoServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(KeyRefError, match=f"cannot reach KMS at {dead}") as info:
        load_signer("awskms:///alias/anything", environ=env(dead))
    assert time.monotonic() - started < 20
    assert "kms-secret-never-print" not in str(info.value)


def test_missing_region_and_half_credentials(moto: MotoServer) -> None:
    environ = env(moto.url)
    del environ["AWS_REGION"]
    # botocore would read ~/.aws/config: point it at nothing so the test sees no region.
    environ["AWS_CONFIG_FILE"] = "/nonexistent"
    with pytest.raises(KeyRefError, match="no AWS region"):
        load_signer("awskms:///alias/x", environ=environ)
    with pytest.raises(KeyRefError, match="AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY"):
        load_signer(
            "awskms:///alias/x",
            environ={"AWS_ACCESS_KEY_ID": "a", "AWS_REGION": REGION, "AWS_ENDPOINT_URL": moto.url},
        )


def test_kms_specific_endpoint_wins_over_the_global_one(moto: MotoServer) -> None:
    key_id = create_key(moto.url, "ECC_NIST_P256")
    dead = f"http://127.0.0.1:{free_port()}"
    public = independent_public_key(moto.url, key_id)
    # AWS_ENDPOINT_URL points at a closed port: signing works only through the KMS endpoint.
    environ = env(moto.url, AWS_ENDPOINT_URL=dead)
    signature = load_signer(f"awskms:///{key_id}", environ=environ).sign(PAYLOAD)
    public.verify(signature, PAYLOAD, ec.ECDSA(hashes.SHA256()))
    # Without a KMS endpoint, the global one is used.
    environ = env(dead)
    environ.pop("AWS_ENDPOINT_URL_KMS")
    environ["AWS_ENDPOINT_URL"] = moto.url
    signature = load_signer(f"awskms:///{key_id}", environ=environ).sign(PAYLOAD)
    public.verify(signature, PAYLOAD, ec.ECDSA(hashes.SHA256()))
    # And with the KMS endpoint closed, the global one is not used instead.
    environ = env(dead, AWS_ENDPOINT_URL=moto.url)
    with pytest.raises(KeyRefError):
        load_signer(f"awskms:///{key_id}", environ=environ).sign(PAYLOAD)


# --- requests per operation, through a counting proxy -----------------------------------------


@pytest.fixture
async def aws(moto: MotoServer) -> AsyncIterator[AwsProxy]:
    proxy = await AwsProxy(moto.url).start()
    yield proxy
    await proxy.aclose()


async def test_one_request_to_load_and_one_per_signature(aws: AwsProxy) -> None:
    key_id = create_key(aws.upstream, "ECC_NIST_P256")
    signer = await asyncio.to_thread(load_signer, f"awskms:///{key_id}", environ=env(aws.url))
    assert [call.target for call in aws.calls] == ["TrentService.GetPublicKey"]
    for _ in range(3):
        await asyncio.to_thread(signer.sign, PAYLOAD)
    assert [call.target for call in aws.calls[1:]] == ["TrentService.Sign"] * 3
    sign = json.loads(aws.calls[1].body)
    assert sign["MessageType"] == "RAW"
    assert sign["SigningAlgorithm"] == "ECDSA_SHA_256"
    assert base64.b64decode(sign["Message"]) == PAYLOAD
    assert {call.region for call in aws.calls} == {REGION}
    signer.public_key()
    assert len(aws.calls) == 4


async def test_payloads_over_4096_bytes_go_as_their_digest(aws: AwsProxy) -> None:
    # What a Sign request for a large payload carries. moto signs every message as RAW
    # (its Sign does not implement MessageType DIGEST), so the signature itself is not
    # checked here: AWS KMS signs the digest as given.
    key_id = create_key(aws.upstream, "RSA_2048")
    signer = await asyncio.to_thread(load_signer, f"awskms:///{key_id}", environ=env(aws.url))
    large = b"x" * 5000
    await asyncio.to_thread(signer.sign, large)
    sign = json.loads(aws.calls[-1].body)
    assert sign["MessageType"] == "DIGEST"
    assert sign["SigningAlgorithm"] == "RSASSA_PKCS1_V1_5_SHA_256"
    assert base64.b64decode(sign["Message"]) == hashlib.sha256(large).digest()


async def test_access_denied_is_a_key_error(aws: AwsProxy) -> None:
    denied = {"__type": "AccessDeniedException", "message": "User is not authorized"}
    aws.fail_next.append((400, denied))
    with pytest.raises(KeyRefError, match="access denied") as info:
        await asyncio.to_thread(load_signer, "awskms:///alias/x", environ=env(aws.url))
    assert info.value.hint is not None
    assert "kms:Sign" in info.value.hint


# --- the endpoint written in the reference, over TLS --------------------------------------------


@pytest.fixture(scope="module")
def tls_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """moto_server serving HTTPS with a certificate for 127.0.0.1: (host:port, CA bundle)."""
    folder = tmp_path_factory.mktemp("moto-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    port = free_port()
    log = (folder / "moto.log").open("wb")
    process = subprocess.Popen(
        [
            str(MOTO_SERVER),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            "-c",
            str(folder / "cert.pem"),
            "-k",
            str(folder / "key.pem"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    deadline = time.monotonic() + 30
    try:
        while True:
            assert process.poll() is None, (folder / "moto.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/moto-api/", context=context, timeout=1
                ):
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "moto_server (TLS) did not answer"
                time.sleep(0.05)
        yield f"127.0.0.1:{port}", folder / "ca.pem"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_endpoint_in_the_reference_wins_and_is_https(tls_moto: tuple[str, Path]) -> None:
    host, ca_bundle = tls_moto
    setup = boto3.client(
        "kms",
        region_name=REGION,
        endpoint_url=f"https://{host}",
        verify=str(ca_bundle),
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    key_id = setup.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
        "KeyId"
    ]
    setup.create_alias(AliasName="alias/in-the-uri", TargetKeyId=key_id)
    dead = f"http://127.0.0.1:{free_port()}"
    # Both environment endpoints point nowhere: only the URI's endpoint can have answered.
    environ = env(dead, AWS_ENDPOINT_URL=dead, AWS_CA_BUNDLE=str(ca_bundle))
    signer = load_signer(f"awskms://{host}/alias/in-the-uri", environ=environ)
    independent = serialization.load_der_public_key(setup.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(independent, ec.EllipticCurvePublicKey)
    independent.verify(signer.sign(PAYLOAD), PAYLOAD, ec.ECDSA(hashes.SHA256()))
    # Without the CA bundle the TLS handshake fails: the endpoint was used as https://.
    environ.pop("AWS_CA_BUNDLE")
    with pytest.raises(KeyRefError, match=f"TLS verification failed for KMS at https://{host}"):
        load_signer(f"awskms://{host}/alias/in-the-uri", environ=environ)


# --- generate-key-pair --kms --------------------------------------------------------------------


def test_create_kms_key_under_an_alias(moto: MotoServer) -> None:
    ref = "awskms:///alias/created-by-imgctl"
    created = create_kms_key(ref, env(moto.url))
    client = kms(moto.url)
    meta = client.describe_key(KeyId="alias/created-by-imgctl")["KeyMetadata"]
    assert meta["KeySpec"] == "ECC_NIST_P256"
    assert meta["KeyUsage"] == "SIGN_VERIFY"
    created.public_key().verify(PAYLOAD, created.sign(PAYLOAD))
    # Asking again uses the key that is there (cosign does the same), no second key.
    before = len(client.list_keys()["Keys"])
    again = create_kms_key(ref, env(moto.url))
    assert again.public_key().same_key(created.public_key())
    assert len(client.list_keys()["Keys"]) == before
    with pytest.raises(KeyRefError, match="needs an alias"):
        create_kms_key(f"awskms:///{meta['KeyId']}", env(moto.url))
    with pytest.raises(KeyRefError, match="not supported yet"):
        create_kms_key("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", env(moto.url))


def test_cli_generate_key_pair_kms(moto: MotoServer, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imgctl.cli._app import app

    prefix = tmp_path / "kms"
    ref = "awskms:///alias/cli-created"
    result = CliRunner().invoke(
        app,
        ["generate-key-pair", "--kms", ref, "--output-key-prefix", str(prefix), "-o", "json"],
        env={**env(moto.url), "COSIGN_PASSWORD": None},
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc == {
        "privateKey": None,
        "kms": ref,
        "publicKey": f"{prefix}.pub",
        "keyId": doc["keyId"],
    }
    assert not Path(f"{prefix}.key").exists()
    signer = load_signer(ref, environ=env(moto.url))
    assert signer.public_key().key_id == doc["keyId"]
    load_public_key(f"{prefix}.pub").verify(PAYLOAD, signer.sign(PAYLOAD))
