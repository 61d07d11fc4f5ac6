"""Credentials and TLS end to end: every source against real registries, through the CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import trustme

from ..conftest import IMGCTL, PASSWORD, USER, PushedImage, Tls
from ..support.layout import BuiltImage
from ..support.moto import MotoServer
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of, push_layout
from ..support.tokenserver import TokenServer

SECRET_TOKEN = "refresh-for-alice"  # the token server's refresh token for alice


@dataclass
class Env:
    """A clean environment for imgctl subprocesses: its own HOME, no real credentials."""

    home: Path
    vars: dict[str, str]

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = self.vars | extra
        return subprocess.run([IMGCTL, *args], capture_output=True, text=True, env=env, timeout=120)

    def docker_config(self, document: dict[str, object]) -> Path:
        path = self.home / ".docker" / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document))
        return path


@pytest.fixture
def env(tmp_path: Path) -> Env:
    home = tmp_path / "home"
    home.mkdir()
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")
    base = {k: v for k, v in os.environ.items() if k in keep}
    base |= {"HOME": str(home), "IMGCTL_ENABLE_IAAS_AUTH": "false"}
    return Env(home, base)


def basic(user: str, password: str) -> str:
    return b64encode(f"{user}:{password}".encode()).decode()


def push_as_alice(layouts: Callable[..., BuiltImage], ref: str) -> tuple[str, str]:
    """Push a small fresh image to ``ref`` with skopeo as alice; (ref, digest)."""
    built = layouts(tag="v1", layers=1, layer_size=500)
    push_layout(built.oci_ref, ref, creds=f"{USER}:{PASSWORD}")
    return ref, built.digest


@pytest.fixture(scope="module")
def private_image(
    htpasswd_registry: Registry, layouts: Callable[..., BuiltImage]
) -> tuple[str, str]:
    return push_as_alice(layouts, f"{htpasswd_registry.host}/private/app:v1")


def assert_no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in (PASSWORD, SECRET_TOKEN, basic(USER, PASSWORD), *secrets):
        assert secret not in result.stdout
        assert secret not in result.stderr


def credential_helper(directory: Path, answers: dict[str, tuple[str, str]]) -> Path:
    """A real ``docker-credential-test`` executable that records what it was asked."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "calls.log"
    script = directory / "docker-credential-test"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"answers = {answers!r}\n"
        "server = sys.stdin.read().strip()\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + ' ' + server + '\\n')\n"
        "if sys.argv[1] != 'get' or server not in answers:\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
        "user, secret = answers[server]\n"
        "print(json.dumps({'ServerURL': server, 'Username': user, 'Secret': secret}))\n"
    )
    script.chmod(0o755)
    return log


# ----------------------------------------------------------------- Basic auth, every source


def test_anonymous_is_refused_with_a_hint(env: Env, private_image: tuple[str, str]) -> None:
    ref, _ = private_image
    result = env.run("digest", ref)
    assert result.returncode == 1
    assert "--registry-username" in result.stderr


@pytest.mark.parametrize(
    "source",
    ["imgctl-env", "imgpkg-env", "flags", "flag-env", "docker-auth", "docker-userpass", "podman"],
)
def test_basic_auth_registry_accepts_each_source(
    env: Env, private_image: tuple[str, str], htpasswd_registry: Registry, source: str
) -> None:
    ref, digest = private_image
    host = htpasswd_registry.host
    args: list[str] = []
    extra: dict[str, str] = {}
    if source == "imgctl-env":
        extra = {
            "IMGCTL_CREDS_HOSTNAME_0": f"{host}/private",
            "IMGCTL_CREDS_USERNAME_0": USER,
            "IMGCTL_CREDS_PASSWORD_0": PASSWORD,
        }
    elif source == "imgpkg-env":
        extra = {
            "IMGPKG_REGISTRY_HOSTNAME": f"http://{host}/v2/",
            "IMGPKG_REGISTRY_USERNAME": USER,
            "IMGPKG_REGISTRY_PASSWORD": PASSWORD,
        }
    elif source == "flags":
        args = ["--registry-username", USER, "--registry-password", PASSWORD]
    elif source == "flag-env":
        extra = {"IMGCTL_USERNAME": USER, "IMGCTL_PASSWORD": PASSWORD}
    elif source == "docker-auth":
        env.docker_config({"auths": {f"https://{host}": {"auth": basic(USER, PASSWORD)}}})
    elif source == "docker-userpass":
        config_dir = env.home / "elsewhere"
        config_dir.mkdir()
        (config_dir / "config.json").write_text(
            json.dumps({"auths": {host: {"username": USER, "password": PASSWORD}}})
        )
        extra = {"DOCKER_CONFIG": str(config_dir)}
    elif source == "podman":
        auth_file = env.home / "auth.json"
        auth_file.write_text(
            json.dumps({"auths": {f"{host}/private": {"auth": basic(USER, PASSWORD)}}})
        )
        extra = {"REGISTRY_AUTH_FILE": str(auth_file)}
    result = env.run("digest", ref, *args, **extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == digest
    assert_no_secret(result)


def test_credential_helper_is_called_with_the_docker_protocol(
    env: Env, private_image: tuple[str, str], htpasswd_registry: Registry, tmp_path: Path
) -> None:
    ref, digest = private_image
    host = htpasswd_registry.host
    log = credential_helper(tmp_path / "bin", {host: (USER, PASSWORD)})
    env.docker_config({"credHelpers": {host: "test"}, "auths": {host: {"auth": basic("x", "y")}}})
    path = f"{tmp_path / 'bin'}{os.pathsep}{env.vars['PATH']}"
    result = env.run("digest", ref, PATH=path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == digest
    assert log.read_text().split() == ["get", host]
    assert_no_secret(result)

    # credsStore: the same helper for every host; a host it does not know falls back to auths.
    env.docker_config({"credsStore": "test", "auths": {host: {"auth": basic(USER, PASSWORD)}}})
    log.unlink()
    other = credential_helper(tmp_path / "bin", {})
    result = env.run("digest", ref, PATH=path)
    assert result.returncode == 0, result.stderr
    assert other.read_text().split() == ["get", host]


def test_wrong_password_fails_without_echoing_it(env: Env, private_image: tuple[str, str]) -> None:
    ref, _ = private_image
    wrong = "wrong-but-still-secret-pw"
    result = env.run("digest", ref, "--registry-username", USER, "--registry-password", wrong)
    assert result.returncode == 1
    assert "refused" in result.stderr
    assert_no_secret(result, wrong)


# ----------------------------------------------------------------- precedence, explain


def test_precedence_env_then_flags_then_docker_config(
    env: Env, private_image: tuple[str, str], htpasswd_registry: Registry
) -> None:
    ref, digest = private_image
    host = htpasswd_registry.host
    env.docker_config({"auths": {host: {"auth": basic(USER, "docker-wrong-pw")}}})
    entry = {
        "IMGCTL_CREDS_HOSTNAME": host,
        "IMGCTL_CREDS_USERNAME": USER,
        "IMGCTL_CREDS_PASSWORD": PASSWORD,
    }
    flags = ["--registry-username", USER, "--registry-password", "flag-wrong-pw"]
    # env entry beats flags and docker config: the right password wins.
    result = env.run("digest", ref, *flags, **entry)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == digest
    # flags beat docker config: both wrong, but the error comes from the flags' attempt.
    explain = env.run("auth", "explain", ref, *flags, "-o", "json")
    assert explain.returncode == 0, explain.stderr
    document = json.loads(explain.stdout)
    assert document["source"] == "flags"
    assert [c["source"] for c in document["consulted"]] == ["env", "flags"]
    assert "docker-config" in document["notConsulted"]
    # without flags, docker config answers.
    document = json.loads(env.run("auth", "explain", ref, "-o", "json").stdout)
    assert document["source"] == "docker-config"
    assert document["username"] == USER
    # --registry-anon: docker config is not read at all.
    anon = env.run("auth", "explain", ref, "--registry-anon", "-o", "json")
    assert json.loads(anon.stdout)["source"] is None
    assert env.run("digest", ref, "--registry-anon").returncode == 1
    for run in (result, explain, anon):
        assert_no_secret(run, "docker-wrong-pw", "flag-wrong-pw")


def test_auth_explain_text_names_source_and_reason_never_the_secret(
    env: Env, htpasswd_registry: Registry
) -> None:
    host = htpasswd_registry.host
    secret = "s3cr3t-explained-pw"
    result = env.run(
        "auth",
        "explain",
        f"{host}/team/app:v1",
        IMGCTL_CREDS_HOSTNAME_a=f"{host}/other",
        IMGCTL_CREDS_USERNAME_a="nobody",
        IMGCTL_CREDS_PASSWORD_a="x",
        IMGCTL_CREDS_HOSTNAME_b=f"{host}/team",
        IMGCTL_CREDS_USERNAME_b="robot",
        IMGCTL_CREDS_PASSWORD_b=secret,
    )
    assert result.returncode == 0, result.stderr
    assert "IMGCTL_CREDS_HOSTNAME_b" in result.stdout
    assert "basic, user 'robot' from env" in result.stdout
    assert "plain HTTP allowed" in result.stdout
    assert_no_secret(result, secret)


def test_bad_env_entry_is_one_clear_error(env: Env) -> None:
    result = env.run("digest", "127.0.0.1:1/x:y", IMGCTL_CREDS_PASWORD_0="hunter2-typo")
    assert result.returncode == 1
    assert "unknown variable IMGCTL_CREDS_PASWORD_0" in result.stderr
    assert "hunter2-typo" not in result.stderr
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------- bearer token registry


@pytest.fixture(scope="module")
def token_image(token_registry: Registry, layouts: Callable[..., BuiltImage]) -> tuple[str, str]:
    return push_as_alice(layouts, f"{token_registry.host}/tokens/app:v1")


def fetch_registry_token(token_server: TokenServer, scope: str) -> str:
    request = urllib.request.Request(
        f"{token_server.realm}?service=imgctl-test-registry&scope={scope}",
        headers={"Authorization": f"Basic {basic(USER, PASSWORD)}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["token"])


@pytest.mark.parametrize(
    "source",
    [
        "env-identity",
        "env-registry-token",
        # carvel-dev/imgpkg test/e2e/auth_test.go (commit 240e8789): "Identity Token" and the
        # registry-token case, through imgpkg's own variables.
        "imgpkg-env-identity",
        "imgpkg-env-registry-token",
        "flag-token",
        "docker-identity",
        "helper",
    ],
)
def test_token_registry_accepts_each_source(
    env: Env,
    token_image: tuple[str, str],
    token_registry: Registry,
    token_server: TokenServer,
    tmp_path: Path,
    source: str,
) -> None:
    ref, digest = token_image
    host = token_registry.host
    args: list[str] = []
    extra: dict[str, str] = {}
    secrets: list[str] = []
    if source == "env-identity":
        extra = {"IMGCTL_CREDS_HOSTNAME": host, "IMGCTL_CREDS_IDENTITY_TOKEN": SECRET_TOKEN}
    elif source == "env-registry-token":
        token = fetch_registry_token(token_server, "repository:tokens/app:pull")
        secrets.append(token)
        extra = {"IMGCTL_CREDS_HOSTNAME": host, "IMGCTL_CREDS_REGISTRY_TOKEN": token}
    elif source == "imgpkg-env-identity":
        extra = {"IMGPKG_REGISTRY_HOSTNAME": host, "IMGPKG_REGISTRY_IDENTITY_TOKEN": SECRET_TOKEN}
    elif source == "imgpkg-env-registry-token":
        token = fetch_registry_token(token_server, "repository:tokens/app:pull")
        secrets.append(token)
        extra = {"IMGPKG_REGISTRY_HOSTNAME": host, "IMGPKG_REGISTRY_REGISTRY_TOKEN": token}
    elif source == "flag-token":
        token = fetch_registry_token(token_server, "repository:tokens/app:pull")
        secrets.append(token)
        args = ["--registry-token", token]
    elif source == "docker-identity":
        env.docker_config({"auths": {host: {"identitytoken": SECRET_TOKEN}}})
    elif source == "helper":
        credential_helper(tmp_path / "bin", {host: ("<token>", SECRET_TOKEN)})
        env.docker_config({"credHelpers": {host: "test"}})
        extra = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{env.vars['PATH']}"}
    result = env.run("digest", ref, *args, **extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == digest
    assert_no_secret(result, *secrets)


# ----------------------------------------------------------------- TLS: private CA and mTLS


def test_private_ca_registry_needs_the_ca_flag(
    env: Env, tls_registry: Registry, tls: Tls, push_image: Callable[..., PushedImage]
) -> None:
    image = push_image(tls_registry, cert_dir=tls.cert_dir, layers=1, layer_size=300)
    refused = env.run("digest", image.ref)
    assert refused.returncode == 1
    assert "--registry-ca-cert-path" in refused.stderr
    ok = env.run("digest", image.ref, "--registry-ca-cert-path", str(tls.ca_file))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == image.digest
    via_env = env.run("digest", image.ref, IMGCTL_TLS_CA_CERT_PATH=str(tls.ca_file))
    assert via_env.stdout.strip() == image.digest


def test_unverified_tls_works_and_warns_loudly(
    env: Env, tls_registry: Registry, tls: Tls, push_image: Callable[..., PushedImage]
) -> None:
    image = push_image(tls_registry, cert_dir=tls.cert_dir, layers=1, layer_size=300)
    result = env.run("digest", image.ref, "--registry-verify-certs=false")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == image.digest
    assert "warning: TLS certificates are NOT verified for any registry" in result.stderr
    via_env = env.run("digest", image.ref, IMGCTL_TLS_VERIFY_CERTS="false")
    assert via_env.stdout.strip() == image.digest
    assert "NOT verified" in via_env.stderr
    typo = env.run("digest", image.ref, "--registry-verify-certs", "flase")
    assert typo.returncode == 2  # a usage error (README "Exit codes")
    assert "--registry-verify-certs takes true or false, not 'flase'" in typo.stderr


@dataclass
class MtlsSetup:
    registry: Registry
    ca_file: Path
    client_cert: Path
    client_key: Path
    cert_dir: Path


@pytest.fixture(scope="module")
def mtls(
    registries: Callable[..., Registry], tls: Tls, tmp_path_factory: pytest.TempPathFactory
) -> MtlsSetup:
    directory = tmp_path_factory.mktemp("mtls")
    client_ca = trustme.CA()
    client_ca_file = directory / "client-ca.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    client = client_ca.issue_cert("alice@example.com")
    cert, key = directory / "client.pem", directory / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    cert_dir = directory / "certs.d"  # skopeo's layout: CA *.crt, client *.cert + *.key
    cert_dir.mkdir()
    tls.ca.cert_pem.write_to_path(str(cert_dir / "ca.crt"))
    client.cert_chain_pems[0].write_to_path(str(cert_dir / "client.cert"))
    client.private_key_pem.write_to_path(str(cert_dir / "client.key"))
    registry = registries(
        tls_cert=tls.cert, tls_key=tls.key, client_cas=[client_ca_file], scheme="https"
    )
    return MtlsSetup(registry, tls.ca_file, cert, key, cert_dir)


def test_mtls_registry_works_with_a_client_certificate(
    env: Env, mtls: MtlsSetup, push_image: Callable[..., PushedImage]
) -> None:
    image = push_image(mtls.registry, cert_dir=mtls.cert_dir, layers=1, layer_size=300)
    ca = ["--registry-ca-cert-path", str(mtls.ca_file)]
    refused = env.run("digest", image.ref, *ca)
    assert refused.returncode == 1
    assert "--registry-client-cert" in refused.stderr
    assert "Traceback" not in refused.stderr
    flags = ["--registry-client-cert", str(mtls.client_cert)]
    flags += ["--registry-client-key", str(mtls.client_key)]
    ok = env.run("digest", image.ref, *ca, *flags)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == image.digest


def test_per_registry_tls_from_the_config_file(
    env: Env, mtls: MtlsSetup, push_image: Callable[..., PushedImage], tmp_path: Path
) -> None:
    image = push_image(mtls.registry, cert_dir=mtls.cert_dir, layers=1, layer_size=300)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[registry.hosts."{mtls.registry.host}"]\n'
        f'ca_cert_paths = ["{mtls.ca_file}"]\n'
        f'client_cert = "{mtls.client_cert}"\n'
        f'client_key = "{mtls.client_key}"\n'
    )
    result = env.run("digest", image.ref, IMGCTL_CONFIG=str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == image.digest
    explain = env.run("auth", "explain", image.ref, "--config", str(config))
    assert f"client certificate {mtls.client_cert}" in explain.stdout

    config.write_text('[registry.hosts.x]\nclient_certificate = "/nope"\n')
    bad = env.run("digest", image.ref, "--config", str(config))
    assert bad.returncode == 2
    assert "unknown key(s) client_certificate (did you mean 'client_cert'?)" in bad.stderr


async def test_no_secret_in_debug_logs_of_a_whole_authenticated_session(
    private_image: tuple[str, str],
    htpasswd_registry: Registry,
    token_image: tuple[str, str],
    token_registry: Registry,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from imgctl.authn import default_keychain
    from imgctl.oci import Reference
    from imgctl.remote import RegistryClient

    caplog.set_level(logging.DEBUG)
    environ = {
        "IMGCTL_CREDS_HOSTNAME_0": htpasswd_registry.host,
        "IMGCTL_CREDS_USERNAME_0": USER,
        "IMGCTL_CREDS_PASSWORD_0": PASSWORD,
        "IMGCTL_CREDS_HOSTNAME_1": token_registry.host,
        "IMGCTL_CREDS_IDENTITY_TOKEN_1": SECRET_TOKEN,
    }
    async with RegistryClient(default_keychain(environ, tmp_path)) as client:
        for ref, digest in (private_image, token_image):
            assert str((await client.get_manifest(Reference.parse(ref))).digest) == digest
    assert caplog.records  # the HTTP stack did log
    for secret in (PASSWORD, SECRET_TOKEN, basic(USER, PASSWORD)):
        assert secret not in caplog.text


# ----------------------------------------------------------------- cloud keychains, end to end

ECR_ACCOUNT = "123456789012"
ECR_HOST = f"{ECR_ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
GITHUB_TOKEN = "ghp_imgctl-test-token-0123456789"


@pytest.fixture(scope="module")
def cloud_registry(
    registries: Callable[..., Registry], tmp_path_factory: pytest.TempPathFactory
) -> Registry:
    """A registry whose users are what the ECR (via moto) and ghcr keychains present."""
    path = tmp_path_factory.mktemp("cloud-htpasswd") / "htpasswd"
    users = {"AWS": f"{ECR_ACCOUNT}-auth-token", "octocat": GITHUB_TOKEN, USER: PASSWORD}
    path.write_text(
        "".join(
            f"{name}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
            for name, pw in users.items()
        )
    )
    return registries(htpasswd=path)


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.mark.parametrize("cloud", ["ecr", "ghcr"])
def test_cloud_keychain_credentials_reach_a_real_registry_through_an_http_proxy(
    env: Env,
    cloud_registry: Registry,
    moto_server: MotoServer,
    layouts: Callable[..., BuiltImage],
    proxy_for: Callable[[Registry], FaultProxy],
    cloud: str,
) -> None:
    _, digest = push_as_alice(layouts, f"{cloud_registry.host}/team/app:v1")
    # The registry answers for the cloud host name through a forward proxy (HTTP_PROXY), the
    # way a corporate proxy would carry it; the host is marked insecure, as the proxy is HTTP.
    proxy = proxy_for(cloud_registry)
    host = ECR_HOST if cloud == "ecr" else "ghcr.io"
    extra = {
        "IMGCTL_ENABLE_IAAS_AUTH": "true",
        "HTTP_PROXY": f"http://{proxy.host}",
        "HTTPS_PROXY": f"http://{proxy.host}",
        "NO_PROXY": "127.0.0.1,localhost",  # moto itself is reached directly
    }
    if cloud == "ecr":
        extra |= {
            "AWS_ACCESS_KEY_ID": "AKIDIMGCTLTEST",
            "AWS_SECRET_ACCESS_KEY": "imgctl-test-aws-secret",
            "AWS_ENDPOINT_URL": moto_server.url,
        }
    else:
        extra |= {"GITHUB_TOKEN": GITHUB_TOKEN, "GITHUB_ACTOR": "octocat"}
    ref = f"{host}/team/app:v1"
    result = env.run("digest", ref, "--registry-insecure", host, **extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == digest
    assert any(path.startswith(f"http://{host}/v2/team/app/manifests/") for _, path, _ in proxy.log)
    explain = env.run("auth", "explain", ref, "-o", "json", **extra)
    assert json.loads(explain.stdout)["source"] == cloud
    assert_no_secret(result, f"{ECR_ACCOUNT}-auth-token", GITHUB_TOKEN, "imgctl-test-aws-secret")
    assert_no_secret(explain, f"{ECR_ACCOUNT}-auth-token", GITHUB_TOKEN)


def test_copy_between_registries_with_credentials_per_host(
    env: Env,
    private_image: tuple[str, str],
    htpasswd_registry: Registry,
    token_registry: Registry,
) -> None:

    ref, digest = private_image
    destination = f"{token_registry.host}/promoted/app:v1"
    result = env.run(
        "copy",
        ref,
        destination,
        IMGCTL_CREDS_HOSTNAME_dev=htpasswd_registry.host,
        IMGCTL_CREDS_USERNAME_dev=USER,
        IMGCTL_CREDS_PASSWORD_dev=PASSWORD,
        IMGCTL_CREDS_HOSTNAME_prod=f"{token_registry.host}/promoted",
        IMGCTL_CREDS_IDENTITY_TOKEN_prod=SECRET_TOKEN,
    )
    assert result.returncode == 0, result.stderr
    assert digest_of(destination, creds=f"{USER}:{PASSWORD}") == digest
    assert_no_secret(result)


@pytest.mark.parametrize("flag", ["--registry-ca-cert-path", "--registry-client-cert"])
def test_unreadable_pem_files_are_one_clear_error(
    env: Env, tls_registry: Registry, tmp_path: Path, flag: str
) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    result = env.run("digest", f"{tls_registry.host}/x:y", flag, str(bogus))
    assert result.returncode == 2
    assert str(bogus) in result.stderr
    assert flag in result.stderr
    assert "Traceback" not in result.stderr
