"""deploy/'s manifests, checked offline: the base and both overlays render, every document
validates against the Kubernetes schemas (kubernetes-validate) or, for cert-manager's and the
Prometheus Operator's kinds, has what those need; the names that tie the documents together
agree; the alert rules pass `promtool check rules` and their unit tests
(tests/data/deploy/alerts-test.yaml); and every imgctl metric an alert names is one a real
`imgctl server --watches` serves at /metrics.
"""

from __future__ import annotations

import base64
import contextlib
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import IMGCTL
from ..support.deployment import AUDIENCE, OPS, SECRET, server_env, start_server, stop_process
from ..support.idp import start_idp
from ..support.kustomize import merge, render
from ..support.registry import Registry
from ..support.sshkeys import keygen

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "kubernetes"
OVERLAYS = {"base": BASE, "small": DEPLOY / "overlays" / "small", "ha": DEPLOY / "overlays" / "ha"}
ALERT_TESTS = ROOT / "tests" / "data" / "deploy" / "alerts-test.yaml"
# The oldest Kubernetes minor version still maintained upstream, and the newest schemas known.
VERSIONS = ("1.30", kubernetes_validate.latest_version())
# Not imgctl's: the API server's own measures of the webhook (kube-apiserver exports them).
APISERVER_METRICS = {
    "apiserver_admission_webhook_admission_duration_seconds_bucket",
    "apiserver_admission_webhook_rejection_count",
}
WEBHOOK_NAME = "promoted-images.imgctl.example.com"


def rendered(which: str) -> list[dict[str, Any]]:
    """The documents of the base or an overlay."""
    return render(OVERLAYS[which])


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one document of ``kind`` (and ``name``)."""
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"].get("name"))]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} documents"
    return found[0]


def rules_spec() -> dict[str, Any]:
    """The PrometheusRule's spec: a Prometheus rules file."""
    return one(rendered("base"), "PrometheusRule")["spec"]


# --- the renderer --------------------------------------------------------------------------


def test_the_renderer_merges_named_lists_replaces_others_and_deletes(tmp_path: Path) -> None:
    base = {"spec": {"containers": [{"name": "a", "image": "x", "args": ["1"]}], "n": 1}}
    patch = {"spec": {"containers": [{"name": "a", "args": ["2"]}, {"name": "b"}]}}
    assert merge(base, patch) == {
        "spec": {"containers": [{"name": "a", "image": "x", "args": ["2"]}, {"name": "b"}], "n": 1}
    }
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "kustomization.yaml").write_text("resources: [all.yaml]\n")
    (tmp_path / "base" / "all.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"
    )
    (tmp_path / "kustomization.yaml").write_text("resources: [base]\npatches: [{path: p.yaml}]\n")
    (tmp_path / "p.yaml").write_text(
        "$patch: delete\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"
    )
    assert [d["metadata"]["name"] for d in render(tmp_path)] == ["a"]
    # A patch that matches nothing, and kustomize features it lacks, are errors, not no-ops.
    (tmp_path / "p.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    with pytest.raises(ValueError, match="matches 0"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [base]\nnamePrefix: x-\n")
    with pytest.raises(ValueError, match="namePrefix"):
        render(tmp_path)


def test_the_overlays_size_the_install() -> None:
    small, ha = rendered("small"), rendered("ha")
    assert one(small, "Deployment")["spec"]["replicas"] == 1
    assert not [d for d in small if d["kind"] == "PodDisruptionBudget"]
    assert one(ha, "Deployment")["spec"]["replicas"] == 3
    assert one(ha, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    spread = one(ha, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["whenUnsatisfiable"] == "DoNotSchedule"
    # The patches kept what they do not mention: both containers, every volume.
    for docs in (small, ha):
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        assert [c["name"] for c in pod["containers"]] == ["imgctl", "tls"]
        assert pod["containers"][0]["image"].startswith("registry.example.com/")
        assert {"state", "policy", "webhook-tls", "tls-config"} <= {
            v["name"] for v in pod["volumes"]
        }


# --- schemas ---------------------------------------------------------------------------------

CRD_REQUIRED: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    # What cert-manager's and the Prometheus Operator's CRDs require (their OpenAPI schemas).
    "Issuer": lambda s: [] if {"selfSigned", "ca", "acme", "vault"} & set(s) else ["issuer type"],
    "Certificate": lambda s: (
        [k for k in ("secretName", "issuerRef") if k not in s]
        + ([] if s.get("issuerRef", {}).get("name") else ["issuerRef.name"])
    ),
    "ServiceMonitor": lambda s: [k for k in ("selector", "endpoints") if not s.get(k)],
    "PrometheusRule": lambda s: [] if s.get("groups") else ["groups"],
}


@pytest.mark.parametrize("which", OVERLAYS)
def test_every_document_validates(which: str) -> None:
    docs = rendered(which)
    for doc in docs:
        where = f"{which}: {doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in CRD_REQUIRED:
            assert not CRD_REQUIRED[doc["kind"]](doc["spec"]), where
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where} is invalid for Kubernetes {version}: {exc.message}")
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "NetworkPolicy",
        "ValidatingWebhookConfiguration",
        "Certificate",
        "Issuer",
        "ServiceMonitor",
        "PrometheusRule",
    }


def test_strict_validation_catches_a_misspelt_field() -> None:
    deployment = one(rendered("base"), "Deployment")
    broken = merge(deployment, {"spec": {"template": {"spec": {"serviceAcountName": "x"}}}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


# --- what ties the documents together ------------------------------------------------------


@pytest.mark.parametrize("which", OVERLAYS)
def test_the_webhook_certificate_service_and_pods_agree(which: str) -> None:
    docs = rendered(which)
    deployment, service = one(docs, "Deployment"), one(docs, "Service")
    pod = deployment["spec"]["template"]["spec"]
    container_ports = {p["name"]: p["containerPort"] for c in pod["containers"] for p in c["ports"]}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert service["spec"]["selector"].items() <= pod_labels.items()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    for port in service_ports.values():
        assert port["targetPort"] in container_ports, port

    hook = one(docs, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert hook["name"] == WEBHOOK_NAME  # the alerts' filter
    assert hook["failurePolicy"] == "Fail"
    assert 1 <= hook["timeoutSeconds"] <= 10
    target = hook["clientConfig"]["service"]
    assert (target["name"], target["namespace"]) == (service["metadata"]["name"], "imgctl")
    assert service_ports["webhook"]["port"] == target["port"]
    assert re.fullmatch(r"/admission/[a-z0-9-]+", target["path"])
    excluded = hook["namespaceSelector"]["matchExpressions"][0]
    assert excluded["operator"] == "NotIn"
    assert "imgctl" in excluded["values"]

    config = one(docs, "ValidatingWebhookConfiguration")["metadata"]["annotations"]
    namespace, name = config["cert-manager.io/inject-ca-from"].split("/")
    certificate = one(docs, "Certificate", name)
    assert certificate["metadata"]["namespace"] == namespace
    assert f"{target['name']}.{target['namespace']}.svc" in certificate["spec"]["dnsNames"]
    one(docs, "Issuer", certificate["spec"]["issuerRef"]["name"])
    mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert certificate["spec"]["secretName"] in mounted

    # The sidecar serves the mounted certificate on the webhook's port, and proxies to imgctl.
    nginx = one(docs, "ConfigMap", "imgctl-tls-proxy")["data"]["default.conf"]
    assert f"listen {container_ports['webhook']} ssl;" in nginx
    assert f"proxy_pass http://127.0.0.1:{container_ports['http']};" in nginx

    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["port"] in container_ports, port
    open_ports = {
        p["port"] for r in policy["spec"]["ingress"] if "from" not in r for p in r["ports"]
    }
    assert "http" not in open_ports  # unauthenticated /metrics and catalog API stay inside

    monitor = one(docs, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] in service_ports


# --- alerts ----------------------------------------------------------------------------------


def test_the_alert_rules_check_and_pass_their_unit_tests(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules_spec()))
    (tmp_path / "alerts-test.yaml").write_text(ALERT_TESTS.read_text())
    checked = subprocess.run(
        ["promtool", "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", "alerts-test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert has a test that sees it fire.
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    alerts = {r["alert"] for g in rules_spec()["groups"] for r in g["rules"]}
    assert fired == alerts


@pytest.fixture(scope="module")
def served_metrics(
    registries: Callable[..., Registry], tmp_path_factory: pytest.TempPathFactory
) -> set[str]:
    """Every series name a real `imgctl server --watches` can serve at /metrics."""
    root = tmp_path_factory.mktemp("deploy-metrics")
    dev, prod = registries(), registries()
    with contextlib.ExitStack() as cleanup:
        # The issuer refuses a config without users; this one is never logged in as.
        key = keygen(root / "keys", "ed25519", name="ops")
        users = {"ops": {"keys": [key.line], "email": "ops@example.com", "groups": [OPS]}}
        idp = start_idp(IMGCTL, root / "idp", users, audiences=[AUDIENCE], secret=SECRET)
        cleanup.callback(idp.stop)
        watches = root / "watches.yaml"
        watches.write_text(
            f'serviceIdentity: {{subject: imgctl-scanner, groups: ["{OPS}"]}}\n'
            f"watches:\n  - {{name: web, image: {dev.host}/deploy/web, interval: 1h}}\n"
        )
        env = server_env(idp, dev, prod) | {
            "IMGCTL_DATABASE_URL": f"sqlite:///{root / 'imgctl.db'}"
        }
        process, _, http, _ = start_server(root, env, "--watches", str(watches))
        cleanup.callback(stop_process, process)
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as response:
            text = response.read().decode()
    names: set[str] = set()
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}
    for family in text_string_to_metric_families(text):
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def test_every_metric_an_alert_names_is_served(served_metrics: set[str]) -> None:
    assert "imgctl_requests_total" in served_metrics  # the scrape was parsed
    for group in rules_spec()["groups"]:
        for rule in group["rules"]:
            named = set(re.findall(r"\b((?:imgctl|apiserver)_[a-z0-9_]+)\b", rule["expr"]))
            assert named, f"{rule['alert']} names no metric"
            unknown = named - served_metrics - APISERVER_METRICS
            assert not unknown, f"{rule['alert']} names metrics nobody exports: {unknown}"


def test_the_openssl_alternative_in_the_docs_makes_a_certificate_for_the_service(
    tmp_path: Path,
) -> None:
    """docs/operations.md's commands, run as written, sign a certificate the API server accepts."""
    docs = (ROOT / "docs" / "operations.md").read_text()
    script = (
        docs.split("<!-- openssl-webhook-certificate -->")[1].split("```sh\n")[1].split("```")[0]
    )
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, check=True, capture_output=True
    )
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.crt", "tls.crt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    names = subprocess.run(
        ["openssl", "x509", "-in", "tls.crt", "-noout", "-ext", "subjectAltName"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:imgctl.imgctl.svc" in names
    assert (
        base64.b64decode((tmp_path / "ca-bundle.b64").read_text())
        == (tmp_path / "ca.crt").read_bytes()
    )
