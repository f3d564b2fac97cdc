"""Offline checks of everything the operator ships: CRDs, rendered objects,
example resources and the Helm chart, against the Kubernetes schemas that
kubernetes-validate bundles and a real Helm engine (helm-python-sdk).

Run: /work/cache/venv/bin/pytest tests/operator
Env: WEIR_BIN (default /work/cache/target/debug/weir) must have `weir operator`.
"""

import copy
import os
import re
import subprocess
from pathlib import Path

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
CHART = ROOT / "charts" / "weir"
EXAMPLES = ROOT / "examples"
WEIR_BIN = os.environ.get("WEIR_BIN", "/work/cache/target/debug/weir")
# The oldest release with everything the builders use (StatefulSet start
# ordinals, PVC retention policy), and the newest kubernetes-validate ships.
K8S_VERSIONS = ["1.33.0", "1.37.0"]


def weir(*args):
    if not Path(WEIR_BIN).exists():
        pytest.fail(f"WEIR_BIN={WEIR_BIN} does not exist; build `weir` first")
    return subprocess.run([WEIR_BIN, *args], capture_output=True, text=True, timeout=60)


def documents(text):
    return [d for d in yaml.safe_load_all(text) if d]


def assert_k8s_valid(objects, version):
    assert objects, "nothing to validate"
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name} invalid for Kubernetes {version}: {e.message} at {list(e.path)}")


def crd_schemas():
    """kind -> openAPIV3Schema, tightened the way the API server's strict field
    validation behaves: unknown fields are errors."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        schema = copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
        for key, value in schema["properties"].items():
            forbid_unknown(value)
        schema["properties"].update(
            {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
        )
        schema["additionalProperties"] = False
        schemas[crd["spec"]["names"]["kind"]] = schema
    return schemas


def forbid_unknown(schema):
    if not isinstance(schema, dict):
        return
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema.setdefault("additionalProperties", False)
    for value in schema.get("properties", {}).values():
        forbid_unknown(value)
    if isinstance(schema.get("items"), dict):
        forbid_unknown(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        forbid_unknown(schema["additionalProperties"])


def schema_errors(resource):
    schema = crd_schemas()[resource["kind"]]
    validator = jsonschema.Draft7Validator(schema)
    return list(validator.iter_errors(resource))


def header(path, key):
    match = re.search(rf"^# {key}: (.+)$", path.read_text(), re.MULTILINE)
    assert match, f"{path.name} needs a '# {key}:' header line"
    return match.group(1).strip()


INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))


# --- CRDs -------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_crds_pass_kubernetes_validate(version):
    files = sorted(CRDS.glob("*.yaml"))
    assert [f.name for f in files] == ["cluster.yaml", "connector.yaml", "streamapp.yaml", "topic.yaml"]
    result = subprocess.run(
        ["kubernetes-validate", "-k", version, "--strict", *map(str, files)],
        capture_output=True, text=True, env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ.get('PATH', '')}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_crd_printer_columns_and_subresources():
    crds = {yaml.safe_load(p.read_text())["spec"]["names"]["kind"]: yaml.safe_load(p.read_text()) for p in CRDS.glob("*.yaml")}
    columns = {k: [c["name"] for c in v["spec"]["versions"][0]["additionalPrinterColumns"]] for k, v in crds.items()}
    assert columns["Cluster"][:2] == ["Ready", "Brokers"]
    assert columns["Topic"] == ["Cluster", "Partitions", "Replicas", "Ready", "Age"]
    assert columns["StreamApp"] == ["Replicas", "Tasks", "Lag", "Ready", "Reason", "Age"]
    for kind, crd in crds.items():
        assert columns[kind][-1] == "Age"
        assert "status" in crd["spec"]["versions"][0]["subresources"], kind
        assert crd["spec"]["names"].get("shortNames"), kind
    assert crds["StreamApp"]["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"


# --- examples ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["cluster.yaml", "topic.yaml"])
def test_valid_examples_match_the_crd_schema(name):
    for resource in documents((EXAMPLES / name).read_text()):
        errors = schema_errors(resource)
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_examples_are_rejected(path):
    checked_by = header(path, "checked-by")
    field = header(path, "field")
    (resource,) = documents(path.read_text())
    errors = schema_errors(resource)
    if checked_by == "schema":
        assert errors, f"{path.name} passed the CRD schema"
        described = " ".join(f"{'.'.join(map(str, e.absolute_path))} {e.message}" for e in errors)
        last = re.split(r"[.\[\]]", field.replace('"', ""))
        assert any(part and part in described for part in last), described
    else:
        assert checked_by == "validate", path.name
        assert not errors, f"{path.name} should pass the schema and fail only Rust validation: {errors[0].message}"
    # Either way `weir operator render` refuses it, naming the field for the
    # rules only Rust checks.
    result = weir("operator", "render", "-f", str(path))
    assert result.returncode != 0, f"render accepted {path.name}"
    if checked_by == "validate":
        assert field in result.stderr, result.stderr


# --- rendered objects -------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_cluster_passes_strict_validation(version):
    result = weir("operator", "render", "-f", str(EXAMPLES / "cluster.yaml"), "-n", "streaming")
    assert result.returncode == 0, result.stderr
    objects = documents(result.stdout)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "Service", "Service", "ServiceAccount", "StatefulSet"]
    assert_k8s_valid(objects, version)


def test_render_uses_the_uid_for_owner_references():
    text = (EXAMPLES / "cluster.yaml").read_text().replace("  name: demo\n", "  name: demo\n  uid: 5e1f0000-0000-4000-8000-000000000042\n", 1)
    result = subprocess.run([WEIR_BIN, "operator", "render", "-f", "-"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for obj in documents(result.stdout):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["uid"] == "5e1f0000-0000-4000-8000-000000000042"
        assert owner["kind"] == "Cluster" and owner["controller"] is True


def test_crds_command_prints_what_is_committed():
    result = weir("operator", "crds")
    assert result.returncode == 0, result.stderr
    printed = documents(result.stdout)
    committed = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))]
    key = lambda c: c["metadata"]["name"]
    assert sorted(printed, key=key) == sorted(committed, key=key)


# --- Helm chart -------------------------------------------------------------


def render_chart(values):
    rendered = helm_python.Chart.load(str(CHART)).render(values=values, name="weir")
    return [d for path, text in rendered.items() if path.endswith(".yaml") for d in documents(text)], rendered


def test_chart_lints():
    result = helm_python.lint(str(CHART))
    assert not result["errors"], result


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["team-a", "team-b"], "logLevel": "debug"}], ids=["all-namespaces", "two-namespaces"])
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_chart_renders_valid_objects(values, version):
    objects, rendered = render_chart(values)
    assert_k8s_valid(objects, version)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator"]
    assert any(path.endswith("NOTES.txt") for path in rendered)
    kinds = {o["kind"] for o in objects}
    if values.get("watchNamespaces"):
        assert "ClusterRole" not in kinds
        namespaces = {o["metadata"]["namespace"] for o in objects if o["kind"] == "Role" and not o["metadata"]["name"].endswith("leader-election")}
        assert namespaces == {"team-a", "team-b"}
    else:
        assert {"ClusterRole", "ClusterRoleBinding"} <= kinds


def test_chart_rbac_is_least_privilege():
    objects, _ = render_chart({})
    (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        if "secrets" in rule["resources"]:
            pytest.fail("the operator has no business reading secrets")
    pods = [r for r in role["rules"] if r["resources"] == ["pods"]]
    assert pods and sorted(pods[0]["verbs"]) == ["delete", "get", "list", "watch"]


def test_chart_crds_are_the_generated_ones():
    for path in sorted(CRDS.glob("*.yaml")):
        assert (CHART / "crds" / path.name).read_text() == path.read_text(), path.name
