"""charts/trainyard with Kueue (kueue.*): a LocalQueue in each training namespace on a ClusterQueue
of that namespace alone, with the quota the values give; the ResourceFlavors; the
WorkloadPriorityClasses with the platform's priority values; the worker's setting and its Kueue
rights; and the trainer Jobs the worker then launches land in those queues. kubernetes-validate
has no schemas for Kueue's custom resources: these tests check their structure. Fixtures:
conftest.py."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import helm_python as helm
import pytest

from trainyard.admission.priorities import PRIORITY_NAMES, PRIORITY_VALUES
from trainyard.auth.projects import SLUG_PATTERN
from trainyard_workflows.launchers import LaunchRequest
from trainyard_workflows.launchers.kubernetes_manifests import (
    KUEUE_PRIORITY_CLASS_PREFIX,
    LABEL_KUEUE_PRIORITY_CLASS,
    LABEL_KUEUE_QUEUE,
    job_manifest,
)
from trainyard_workflows.settings import WorkerSettings

from .rendered_chart import (
    CHART_DIR,
    FULLNAME,
    KUEUE_API_VERSION,
    Manifest,
    RenderedChart,
    render,
    values_file,
)
from .test_helm_chart import SIGN_IN, overlay
from .test_helm_chart_access import KUEUE_RULES, LAUNCHER_RULES

pytestmark = pytest.mark.xdist_group("helm_chart")

KUEUE_KINDS = {"ResourceFlavor", "ClusterQueue", "LocalQueue", "WorkloadPriorityClass"}
# What a trainer pod asks for (the launcher: a GPU limit, nothing else), and so what each
# ClusterQueue must cover: Kueue refuses a workload asking for a resource its queue lacks.
COVERED = ["nvidia.com/gpu", "pods"]


@pytest.fixture(scope="module")
def kueue(chart: helm.Chart) -> RenderedChart:
    return render(chart, values_file("kueue"))


def kueue_objects(rendered: RenderedChart) -> list[Manifest]:
    return [m for m in rendered.manifests if m["apiVersion"].startswith("kueue.x-k8s.io/")]


def rules_of(role: Manifest) -> set[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    return {
        (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"])))
        for r in role["rules"]
    }


def worker_settings(rendered: RenderedChart, monkeypatch: pytest.MonkeyPatch) -> WorkerSettings:
    """The worker's settings as its pod reads them (the rendered ConfigMap)."""
    for key in [key for key in os.environ if key.startswith("TRAINYARD_")]:
        monkeypatch.delenv(key)
    for key, value in rendered.config("worker").items():
        monkeypatch.setenv(key, value)
    return WorkerSettings()


def test_kueue_objects_settings_and_rights_exist_only_when_enabled(
    rendered: RenderedChart,
) -> None:
    enabled = rendered.values["kueue"]["enabled"]
    worker = rendered.config("worker")
    kueue_rules = [rules_of(role) & KUEUE_RULES for role in rendered.of_kind("Role")]
    if enabled:
        assert worker["TRAINYARD_K8S_KUEUE_QUEUE"] == rendered.values["kueue"]["localQueue"]
        assert kueue_rules == [KUEUE_RULES] * len(rendered.training_namespaces)
        assert {m["kind"] for m in kueue_objects(rendered)} <= KUEUE_KINDS
        assert all(m["apiVersion"] == KUEUE_API_VERSION for m in kueue_objects(rendered))
    else:
        assert "TRAINYARD_K8S_KUEUE_QUEUE" not in worker
        assert kueue_rules == [set()] * len(rendered.training_namespaces)
        assert kueue_objects(rendered) == []


def test_each_training_namespace_queues_on_a_cluster_queue_of_its_own(
    kueue: RenderedChart,
) -> None:
    # ml-training holds the default queue (tabular runs there too); nlp has no quota entry.
    expected = {
        "ml-training": (f"{FULLNAME}-default", {"nvidia.com/gpu": 2, "pods": 4}),
        "ml-nlp": (f"{FULLNAME}-nlp", {"nvidia.com/gpu": 2, "pods": 4}),
        "ml-vision": (f"{FULLNAME}-vision", {"nvidia.com/gpu": 8, "pods": 6}),
    }
    local_queues = kueue.of_kind("LocalQueue")
    assert [q["metadata"]["namespace"] for q in local_queues] == kueue.training_namespaces
    assert {q["metadata"]["name"] for q in local_queues} == {"trainyard-gpu"}
    assert {q["metadata"]["namespace"]: q["spec"] for q in local_queues} == {
        namespace: {"clusterQueue": name} for namespace, (name, _) in expected.items()
    }

    cluster_queues = {q["metadata"]["name"]: q["spec"] for q in kueue.of_kind("ClusterQueue")}
    assert cluster_queues.keys() == {name for name, _ in expected.values()}
    for namespace, (name, quota) in expected.items():
        spec = cluster_queues[name]
        assert spec["cohortName"] == "ml-platform"
        assert "cohort" not in spec  # the v1beta1 name
        assert spec["namespaceSelector"] == {
            "matchLabels": {"kubernetes.io/metadata.name": namespace}
        }
        assert spec["queueingStrategy"] == "BestEffortFIFO"
        assert spec["preemption"] == {
            "withinClusterQueue": "LowerOrNewerEqualPriority",
            "reclaimWithinCohort": "LowerPriority",
        }
        [group] = spec["resourceGroups"]
        assert group["coveredResources"] == COVERED
        # The quota sits on the first flavor; the second has none of its own.
        assert [
            (f["name"], {r["name"]: r["nominalQuota"] for r in f["resources"]})
            for f in group["flavors"]
        ] == [
            (f"{FULLNAME}-h100", quota),
            (f"{FULLNAME}-a10g", {"nvidia.com/gpu": 0, "pods": 0}),
        ]
        # Kueue wants each flavor to list the covered resources, in their order.
        assert all([r["name"] for r in f["resources"]] == COVERED for f in group["flavors"])


def test_resource_flavors_carry_the_node_labels_and_tolerations_of_the_values(
    kueue: RenderedChart, chart: helm.Chart
) -> None:
    flavors = {f["metadata"]["name"]: f["spec"] for f in kueue.of_kind("ResourceFlavor")}
    assert flavors == {
        f"{FULLNAME}-h100": {
            "nodeLabels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
        f"{FULLNAME}-a10g": {"nodeLabels": {"nvidia.com/gpu.product": "NVIDIA-A10G"}},
    }
    assert all(
        "namespace" not in f["metadata"] for f in kueue_objects(kueue) if f["kind"] != "LocalQueue"
    )
    # The chart's default: one flavor for any node, quota 0 GPUs and 8 runs, cohort "trainyard".
    defaults = render(chart, overlay(values_file("minimal"), {"kueue": {"enabled": True}}))
    [flavor] = defaults.of_kind("ResourceFlavor")
    assert flavor["metadata"]["name"] == f"{FULLNAME}-gpu"
    assert flavor["spec"] == {}
    [queue] = defaults.of_kind("ClusterQueue")
    assert queue["metadata"]["name"] == f"{FULLNAME}-default"
    assert queue["spec"]["cohortName"] == "trainyard"
    assert queue["spec"]["resourceGroups"][0]["flavors"] == [
        {
            "name": f"{FULLNAME}-gpu",
            "resources": [
                {"name": "nvidia.com/gpu", "nominalQuota": 0},
                {"name": "pods", "nominalQuota": 8},
            ],
        }
    ]
    assert queue["spec"]["preemption"] == {
        "withinClusterQueue": "LowerPriority",
        "reclaimWithinCohort": "Any",
    }
    [local] = defaults.of_kind("LocalQueue")
    assert (local["metadata"]["name"], local["metadata"]["namespace"]) == (
        "trainyard",
        defaults.training_namespace,
    )
    assert local["spec"] == {"clusterQueue": f"{FULLNAME}-default"}


def test_workload_priority_classes_carry_the_platforms_priority_values(
    kueue: RenderedChart,
) -> None:
    # One place per fact: the values live in trainyard/admission/priorities.py, and the worker
    # names the classes with its prefix and the job's level.
    classes = {c["metadata"]["name"]: c["value"] for c in kueue.of_kind("WorkloadPriorityClass")}
    assert classes == {
        f"{KUEUE_PRIORITY_CLASS_PREFIX}{name}": value for name, value in PRIORITY_VALUES.items()
    }
    assert len(classes) == len(PRIORITY_NAMES)


def test_the_workers_role_reads_kueue_in_every_training_namespace(kueue: RenderedChart) -> None:
    roles = kueue.of_kind("Role")
    assert [role["metadata"]["namespace"] for role in roles] == kueue.training_namespaces
    for role in roles:
        assert rules_of(role) == LAUNCHER_RULES | KUEUE_RULES
    # Kueue's objects are the chart's to make: the worker gets no right on them.
    assert all("kueue" not in str(role["rules"]) for role in kueue.of_kind("ClusterRole"))


@pytest.mark.parametrize("project", [None, "vision", "nlp", "tabular", "unlisted"])
def test_trainer_jobs_land_in_a_queue_and_priority_class_the_chart_made(
    kueue: RenderedChart, monkeypatch: pytest.MonkeyPatch, project: str | None
) -> None:
    settings = worker_settings(kueue, monkeypatch)
    local_queues = {q["metadata"]["namespace"]: q for q in kueue.of_kind("LocalQueue")}
    cluster_queues = {q["metadata"]["name"]: q["spec"] for q in kueue.of_kind("ClusterQueue")}
    classes = {c["metadata"]["name"] for c in kueue.of_kind("WorkloadPriorityClass")}
    for priority in PRIORITY_NAMES:
        request = LaunchRequest(
            job_id="job_1",
            attempt=1,
            framework="ultralytics",
            output_dir="/tmp/trainyard/jobs/job_1/attempt-1",
            env={},
            gpus=2,
            project_slug=project,
            priority=priority,
        )
        job = job_manifest(request, settings)
        labels = job["metadata"]["labels"]
        local = local_queues[job["metadata"]["namespace"]]
        assert labels[LABEL_KUEUE_QUEUE] == local["metadata"]["name"]
        assert labels[LABEL_KUEUE_PRIORITY_CLASS] in classes
        assert job["spec"]["suspend"] is True
        covered = cluster_queues[local["spec"]["clusterQueue"]]["resourceGroups"][0]
        for container in job["spec"]["template"]["spec"]["containers"]:
            resources = container.get("resources", {})
            asked = {*resources.get("requests", {}), *resources.get("limits", {})}
            assert asked <= set(covered["coveredResources"])


def test_without_cluster_queues_the_chart_makes_only_local_queues_on_the_named_ones(
    chart: helm.Chart,
) -> None:
    values = overlay(
        values_file("kueue"),
        {"kueue": {"createClusterQueues": False, "clusterQueueNames": {"vision": "gpu-vision"}}},
    )
    rendered = render(chart, values)
    assert {m["kind"] for m in kueue_objects(rendered)} == {"LocalQueue"}
    assert {
        q["metadata"]["namespace"]: q["spec"]["clusterQueue"]
        for q in rendered.of_kind("LocalQueue")
    } == {
        "ml-training": f"{FULLNAME}-default",
        "ml-nlp": f"{FULLNAME}-nlp",
        "ml-vision": "gpu-vision",
    }
    assert rendered.config("worker")["TRAINYARD_K8S_KUEUE_QUEUE"] == "trainyard-gpu"


def test_no_cohort_leaves_the_cluster_queues_on_their_own(chart: helm.Chart) -> None:
    rendered = render(chart, overlay(values_file("kueue"), {"kueue": {"cohort": ""}}))
    assert [q["spec"].get("cohortName") for q in rendered.of_kind("ClusterQueue")] == [None] * 3


@pytest.mark.parametrize(
    ("kueue", "problem"),
    [
        pytest.param(
            {"projectQuotas": {"tabular": {"gpus": 1, "runs": 1}}},
            "kueue.projectQuotas.tabular: project tabular runs in the default training namespace",
            id="quota-in-the-default-namespace",
        ),
        pytest.param(
            {"projectQuotas": {"audio": {"gpus": 1, "runs": 1}}},
            "kueue.projectQuotas.audio: no such project in training.projectNamespaces",
            id="quota-of-an-unknown-project",
        ),
        pytest.param(
            {"clusterQueueNames": {"audio": "gpu-audio"}},
            'kueue.clusterQueueNames.audio: neither "default" nor a project',
            id="queue-name-of-an-unknown-project",
        ),
        pytest.param(
            {"flavors": [{"name": "gpu", "nodeLabels": {}, "tolerations": []}] * 2},
            "kueue.flavors: the name gpu is listed twice",
            id="flavor-twice",
        ),
    ],
)
def test_kueue_values_that_cannot_apply_fail_the_render_naming_them(
    chart: helm.Chart, kueue: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(problem)):
        render(chart, overlay(values_file("kueue"), {"kueue": kueue}))


@pytest.mark.parametrize(
    ("projects", "problem"),
    [
        pytest.param(
            {"vision": "ml-shared", "nlp": "ml-shared"},
            "kueue: projects nlp and vision share the namespace ml-shared",
            id="shared-project-namespace",
        ),
        pytest.param(
            {"default": "ml-default"},
            'kueue: a project named "default" with a namespace of its own',
            id="project-named-default",
        ),
    ],
)
def test_project_namespaces_kueue_cannot_give_one_quota_each_fail_the_render(
    chart: helm.Chart, projects: dict[str, str], problem: str
) -> None:
    values = overlay(SIGN_IN, {"kueue": {"enabled": True}})
    values["training"] = {"projectNamespaces": projects}
    with pytest.raises(helm.HelmRenderError, match=re.escape(problem)):
        render(chart, values)
    # The same namespaces without Kueue are fine: only a queue needs one quota per namespace.
    render(chart, values | {"kueue": {"enabled": False}})


@pytest.mark.parametrize(
    ("kueue", "problem"),
    [
        pytest.param({"cohort": "ML_Platform"}, "at '/kueue/cohort'", id="bad-cohort"),
        pytest.param({"cohortName": "x"}, "'cohortName' not allowed", id="unknown-key"),
        pytest.param({"localQueue": "q" * 64}, "at '/kueue/localQueue'", id="long-queue"),
        pytest.param({"localQueue": ""}, "at '/kueue/localQueue'", id="no-queue"),
        pytest.param({"flavors": []}, "at '/kueue/flavors'", id="no-flavor"),
        pytest.param(
            {
                "flavors": [
                    {
                        "name": "gpu",
                        "nodeLabels": {f"l{i}": "x" for i in range(9)},
                        "tolerations": [],
                    }
                ]
            },
            "at '/kueue/flavors/0/nodeLabels'",
            id="nine-node-labels",
        ),
        pytest.param(
            {"defaultQuota": {"gpus": -1, "runs": 1}},
            "at '/kueue/defaultQuota/gpus'",
            id="negative-quota",
        ),
        pytest.param(
            {"projectQuotas": {"vision": {"gpus": 1}}},
            "at '/kueue/projectQuotas/vision'",
            id="quota-without-runs",
        ),
        pytest.param(
            {"projectQuotas": {"Vision": {"gpus": 1, "runs": 1}}},
            "invalid propertyName 'Vision'",
            id="bad-slug",
        ),
        pytest.param(
            {"preemption": {"withinClusterQueue": "Any", "reclaimWithinCohort": "Any"}},
            "at '/kueue/preemption/withinClusterQueue'",
            id="bad-preemption",
        ),
    ],
)
def test_the_schema_refuses_bad_kueue_values(
    chart: helm.Chart, kueue: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(problem)):
        render(chart, overlay(SIGN_IN, {"kueue": kueue}))


def test_the_schema_takes_project_slugs_as_the_platform_defines_them() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    kueue = schema["properties"]["kueue"]["properties"]
    for key in ("projectQuotas", "clusterQueueNames"):
        assert kueue[key]["propertyNames"] == {"pattern": SLUG_PATTERN}, key
