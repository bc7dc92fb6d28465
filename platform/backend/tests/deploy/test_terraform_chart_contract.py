"""The contract between terraform/examples/aws and charts/trainyard: the example's helm_values
output, evaluated by Terraform itself (a mocked apply: `terraform test -verbose` prints the run's
state, outputs included), sets every key values.schema.json lists under x-trainyard-production,
passes the schema over the chart's defaults, and renders. The IRSA roles land on the
ServiceAccounts they trust, and the secrets step creates every Secret the render references."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from sqlalchemy.engine import make_url

from .rendered_chart import CHART_DIR, KUBE_VERSION, Manifest
from .terraform_cli import Workspace

pytestmark = pytest.mark.xdist_group("terraform")

EXAMPLE = "examples/aws"
# tests/contract.tftest.hcl in the example: the run whose state carries the outputs.
CONTRACT_RUN = ("tests/contract.tftest.hcl", "production")
RELEASE = "trainyard"
SCHEMA: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())
PRODUCTION_KEYS: list[str] = SCHEMA["x-trainyard-production"]
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
# IRSA role -> where helm_values puts its ServiceAccount's annotations.
ANNOTATED = {
    "api": "backend.serviceAccount.annotations",
    "worker": "worker.serviceAccount.annotations",
    "trainer": "training.serviceAccount.annotations",
}


@dataclass(frozen=True)
class ExampleOutputs:
    """The example's root outputs after the mocked apply."""

    outputs: dict[str, Any]

    @property
    def helm_values(self) -> dict[str, Any]:
        values = yaml.safe_load(self.outputs["helm_values"])
        assert isinstance(values, dict)
        return values

    @property
    def namespace(self) -> str:
        return str(self.outputs["namespace"])


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> ExampleOutputs:
    workspace = Workspace(tmp_path_factory.mktemp("terraform"))
    path, run = CONTRACT_RUN
    states = [
        message["test_state"]
        for message in workspace.test_json(EXAMPLE, f"-filter={path}", "-verbose")
        if message.get("type") == "test_state" and message.get("@testrun") == run
    ]
    assert len(states) == 1, f"terraform test printed no state for run {run!r} of {path}"
    return ExampleOutputs({name: o["value"] for name, o in states[0]["outputs"].items()})


@pytest.fixture(scope="module")
def manifests(chart: helm.Chart, example: ExampleOutputs) -> list[Manifest]:
    """The chart rendered with helm_values alone, as `helm install -n <namespace>` would."""
    templates = chart.render(
        example.helm_values, name=RELEASE, namespace=example.namespace, is_install=True
    )
    return [
        document
        for path, text in sorted(templates.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]


def lookup(values: dict[str, Any], path: str) -> tuple[bool, Any]:
    """(found, value) of a dotted path."""
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def find(
    manifests: list[Manifest], kind: str, namespace: str, name: str, release_namespace: str = ""
) -> Manifest:
    """One object by kind, namespace and name; objects without a namespace are the release's."""
    found = [
        m
        for m in manifests
        if m["kind"] == kind
        and m["metadata"]["name"] == name
        and m["metadata"].get("namespace", release_namespace or namespace) == namespace
    ]
    assert len(found) == 1, f"{len(found)} {kind}s {namespace}/{name}"
    return found[0]


def test_helm_values_set_every_production_key(example: ExampleOutputs) -> None:
    # Set by Terraform, not left to the chart's default (secrets.s3.name "" is a choice: IRSA).
    missing = [path for path in PRODUCTION_KEYS if not lookup(example.helm_values, path)[0]]
    assert missing == []
    unset = [
        path
        for path in PRODUCTION_KEYS
        if lookup(example.helm_values, path)[1] in ({}, [], None)
        or (path != "secrets.s3.name" and lookup(example.helm_values, path)[1] == "")
    ]
    assert unset == []


def test_helm_values_over_the_chart_defaults_pass_the_schema(
    chart: helm.Chart, example: ExampleOutputs
) -> None:
    merged = chart.merge_values(example.helm_values)
    validator = jsonschema.Draft7Validator(SCHEMA)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(merged)]
    assert errors == []
    # Nothing of the output is lost in the merge (an unknown key would be refused above).
    for path in PRODUCTION_KEYS:
        assert lookup(merged, path) == lookup(example.helm_values, path), path


def test_the_chart_renders_and_lints_with_helm_values(
    example: ExampleOutputs, manifests: list[Manifest]
) -> None:
    assert manifests != []
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
    report = helm.lint(
        CHART_DIR,
        example.helm_values,
        strict=True,
        namespace=example.namespace,
        kube_version=KUBE_VERSION,
    )
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_each_irsa_role_annotates_the_service_account_it_trusts(
    example: ExampleOutputs, manifests: list[Manifest]
) -> None:
    role_arns: dict[str, str] = example.outputs["role_arns"]
    # contract.tftest.hcl gives each mocked role an ARN of its own: a mix-up shows.
    assert len(set(role_arns.values())) == len(ANNOTATED)
    for role, values_path in ANNOTATED.items():
        namespace, name = example.outputs["service_accounts"][role].split("/")
        account = find(manifests, "ServiceAccount", namespace, name, example.namespace)
        annotations = account["metadata"]["annotations"]
        assert annotations == lookup(example.helm_values, values_path)[1]
        assert annotations[ROLE_ANNOTATION] == role_arns[role]


def test_pods_get_storage_from_terraform_and_no_static_s3_keys(
    example: ExampleOutputs, manifests: list[Manifest]
) -> None:
    values = example.helm_values
    for component in ("backend", "worker"):
        config = find(manifests, "ConfigMap", example.namespace, f"{RELEASE}-{component}")["data"]
        assert config["TRAINYARD_STORAGE_URL"] == values["storage"]["url"]
        assert config["TRAINYARD_S3_REGION"] == values["storage"]["s3"]["region"]
        assert "TRAINYARD_S3_ENDPOINT_URL" not in config
        container = containers(manifests, example.namespace, component)[0]
        assert not [e for e in container["env"] if e["name"].startswith("TRAINYARD_S3_")]
    worker = find(manifests, "ConfigMap", example.namespace, f"{RELEASE}-worker")["data"]
    assert json.loads(worker["TRAINYARD_K8S_NODE_SELECTOR"]) == values["training"]["nodeSelector"]
    assert json.loads(worker["TRAINYARD_K8S_TOLERATIONS"]) == values["training"]["tolerations"]
    assert worker["TRAINYARD_K8S_NAMESPACE"] == values["training"]["namespace"]


def containers(manifests: list[Manifest], namespace: str, component: str) -> list[dict[str, Any]]:
    deployment = find(manifests, "Deployment", namespace, f"{RELEASE}-{component}")
    found: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return found


def created_secrets(script: str) -> set[tuple[str, str]]:
    """(Secret, key) pairs the secrets script creates: `apply_secret 'name' --from-file='key'=`,
    and the tokens Secret's keys from its `for key in ...` list (one file per key)."""
    created = set(re.findall(r"apply_secret '([^']+)' --from-file='([^']+)'=", script))
    tokens = re.search(
        r"for key in ([^;]+); do.*?apply_secret '([^']+)' --from-file=", script, re.S
    )
    assert tokens, "the script makes no tokens Secret"
    created |= {(tokens[2], key) for key in tokens[1].split()}
    return created


def test_the_secrets_step_creates_every_secret_the_render_references(
    example: ExampleOutputs, manifests: list[Manifest]
) -> None:
    referenced = {
        (entry["valueFrom"]["secretKeyRef"]["name"], entry["valueFrom"]["secretKeyRef"]["key"])
        for component in ("backend", "worker")
        for container in containers(manifests, example.namespace, component)
        for entry in container.get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    assert ("trainyard-redis", "url") in referenced
    script: str = example.outputs["secrets_script"]
    assert referenced <= created_secrets(script)
    assert f"-n '{example.namespace}'" in script


def test_the_secrets_script_is_valid_bash(example: ExampleOutputs, tmp_path: Path) -> None:
    script = tmp_path / "secrets.sh"
    script.write_text(example.outputs["secrets_script"])
    result = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# A password with every character a URL treats specially (RDS generates printable ASCII).
DB_PASSWORD = "p@ss:w/rd#?%!*()'+ &="
REDIS_URL = "rediss://:MockToken0123@master.trainyard.abcdef.euw1.cache.amazonaws.com:6379/0"
FAKE_AWS = """#!/usr/bin/env bash
# aws secretsmanager get-secret-value ... --secret-id ARN --query SecretString --output text
while [ $# -gt 0 ]; do [ "$1" = --secret-id ] && id=$2; shift; done
case "$id" in
  *rds*) cat "$FAKE_DIR/database.json" ;;
  *redis*) cat "$FAKE_DIR/redis.json" ;;
  *) echo "unknown secret $id" >&2; exit 254 ;;
esac
"""
# kubectl: `create ... --dry-run=client` is the real one (offline); `apply -f -` records the
# manifest; `get secret` finds the tokens Secret once it was applied.
FAKE_KUBECTL = """#!/usr/bin/env bash
case " $* " in
  *" --dry-run=client "*) exec "$REAL_KUBECTL" "$@" ;;
  *" apply -f - "*) cat > "$FAKE_DIR/applied-$(date +%s%N).yaml" ;;
  *" get secret "*) grep -qs "name: trainyard-tokens" "$FAKE_DIR"/applied-*.yaml ;;
  *) echo "unexpected kubectl $*" >&2; exit 1 ;;
esac
"""


def run_secrets_script(script: str, fakes: Path) -> dict[str, dict[str, str]]:
    """Run the script against fake aws and kubectl; the Secrets it applied, decoded."""
    tools = {name: shutil.which(name) for name in ("bash", "jq", "openssl", "kubectl")}
    missing = [name for name, path in tools.items() if path is None]
    assert missing == [], f"the secrets script test needs {', '.join(missing)} on PATH"
    bin_dir = fakes / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("aws", FAKE_AWS), ("kubectl", FAKE_KUBECTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = os.environ | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_DIR": str(fakes),
        "REAL_KUBECTL": str(tools["kubectl"]),
    }
    result = subprocess.run(
        [str(tools["bash"]), "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    secrets: dict[str, dict[str, str]] = {}
    for applied in sorted(fakes.glob("applied-*.yaml")):
        manifest = yaml.safe_load(applied.read_text())
        if manifest["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in manifest["data"].items()}
            secrets[manifest["metadata"]["name"]] = data
    return secrets


def test_the_secrets_script_writes_urls_the_api_reads_back(
    example: ExampleOutputs, tmp_path: Path
) -> None:
    (tmp_path / "database.json").write_text(
        json.dumps({"username": "trainyard", "password": DB_PASSWORD})
    )
    (tmp_path / "redis.json").write_text(json.dumps({"auth_token": "t", "url": REDIS_URL}))
    script: str = example.outputs["secrets_script"]
    secrets = run_secrets_script(script, tmp_path)
    assert secrets.keys() == {"trainyard-database", "trainyard-redis", "trainyard-tokens"}
    # The password survives the URL: percent-encoded, decoded again by SQLAlchemy.
    url = make_url(secrets["trainyard-database"]["url"])
    assert (url.drivername, url.username, url.password) == (
        "postgresql+asyncpg",
        "trainyard",
        DB_PASSWORD,
    )
    assert (url.port, url.database, dict(url.query)) == (5432, "trainyard", {"ssl": "require"})
    assert secrets["trainyard-redis"] == {"url": REDIS_URL}
    tokens = secrets["trainyard-tokens"]
    assert tokens.keys() == {"internal-token", "callback-secret", "session-secret"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", token) for token in tokens.values())
    assert len(set(tokens.values())) == 3

    # A second run refreshes the URLs and keeps the tokens (running jobs hold tokens they sign).
    again = run_secrets_script(script, tmp_path)
    assert again["trainyard-tokens"] == tokens
    applied_tokens = [
        p for p in tmp_path.glob("applied-*.yaml") if "trainyard-tokens" in p.read_text()
    ]
    assert len(applied_tokens) == 1
