"""The Secret and Job of one attempt, as pure data: names, labels, secrets, scheduling, limits."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from pydantic import SecretStr

from trainyard_workflows.activities.trainer_env import trainer_env
from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.launchers import LaunchRequest, TrainerNotInstalledError
from trainyard_workflows.launchers.kubernetes_manifests import (
    attempt_labels,
    attempt_selector,
    job_manifest,
    job_name,
    label_value,
    owner_reference,
    secret_manifest,
)
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.storage import StorageSettings

JOB_ID = "job_0123456789abcdef0123456789abcdef"
TOKEN = "callback-token-never-in-the-job"
S3_KEY_ID = "s3-key-id-never-in-the-job"
S3_SECRET = "s3-secret-never-in-the-job"
OUTPUT_DIR = "/var/lib/trainyard/jobs/job_0123456789abcdef0123456789abcdef/attempt-2"
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
# podFailurePolicy is GA since 1.31: the oldest cluster the launcher supports.
KUBERNETES_VERSION = "1.31"


def settings(**overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "launcher": "kubernetes",
        "k8s_namespace": "training",
        "k8s_images": {"ultralytics": "registry.example/trainer-ultralytics:1.2"},
        "stop_grace_s": 12.5,
    }
    return WorkerSettings(**(values | overrides))


def request(*, gpus: int = 0, time_limit_s: float | None = None, s3: bool = True) -> LaunchRequest:
    """A request whose env comes from the real trainer contract, S3 credentials included."""
    training = TrainingInput(
        job_id=JOB_ID,
        framework="ultralytics",
        model="yolo11n.yaml",
        dataset_uri="s3://bucket/datasets/ds_1",
        task="detect",
        epochs=3,
        imgsz=640,
        batch=16,
        gpus=gpus,
    )
    storage = StorageSettings(
        storage_url="s3://bucket/root",
        s3_endpoint_url="http://minio:9000",
        s3_access_key_id=S3_KEY_ID,
        s3_secret_access_key=SecretStr(S3_SECRET),
    )
    env = trainer_env(
        training,
        attempt=2,
        callback_url="http://backend:8000",
        callback_token=TOKEN,
        output_dir=Path(OUTPUT_DIR),
        keepalive_s=15,
        storage=storage if s3 else None,
    )
    return LaunchRequest(
        job_id=JOB_ID,
        attempt=2,
        framework="ultralytics",
        output_dir=OUTPUT_DIR,
        env=env,
        time_limit_s=time_limit_s,
        gpus=gpus,
    )


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(job)["containers"]
    assert isinstance(only, dict)
    return only


def test_the_job_is_named_after_the_job_id_and_the_attempt() -> None:
    name = job_name(JOB_ID, 2)

    assert name == "trainyard-job-0123456789abcdef0123456789abcdef-a2"
    assert DNS_1123_LABEL.fullmatch(name)
    assert job_name(JOB_ID, 2) == name
    assert job_name(JOB_ID, 3) != name


@pytest.mark.parametrize(
    "job_id",
    [
        "job_" + "f" * 80,
        "job_ABCDEF",
        "job_a_b-c",
        "job_" + "-" * 70,
        "job_Ünïcode",
    ],
)
def test_every_job_id_makes_a_valid_name_of_at_most_63_characters(job_id: str) -> None:
    name = job_name(job_id, 12345)

    assert len(name) <= 63
    assert DNS_1123_LABEL.fullmatch(name), name
    assert name.endswith("-a12345")


def test_job_ids_that_differ_only_in_case_or_punctuation_get_different_names() -> None:
    names = {job_name(job_id, 1) for job_id in ["job_abc", "job_ABC", "job_a_bc", "job_a-bc"]}

    assert len(names) == 4


@pytest.mark.parametrize("value", [JOB_ID, "job_" + "a" * 80, "job_a/b", "_job_", "é"])
def test_label_values_are_valid_and_keep_valid_ids_as_they_are(value: str) -> None:
    label = label_value(value)

    assert len(label) <= 63
    assert LABEL_VALUE.fullmatch(label), label
    assert (label == value) == bool(len(value) <= 63 and LABEL_VALUE.fullmatch(value))


def test_job_pod_template_and_secret_carry_the_attempt_labels() -> None:
    job = job_manifest(request(), settings())
    secret = secret_manifest(request(), "training")
    expected = {
        "app.kubernetes.io/managed-by": "trainyard",
        "app.kubernetes.io/component": "trainer",
        "trainyard.dev/job-id": JOB_ID,
        "trainyard.dev/attempt": "2",
    }

    assert attempt_labels(JOB_ID, 2) == expected
    assert job["metadata"]["labels"] == expected
    assert job["spec"]["template"]["metadata"]["labels"] == expected
    assert secret["metadata"]["labels"] == expected
    assert attempt_selector(JOB_ID, 2) == ",".join(f"{k}={v}" for k, v in expected.items())


def test_the_secret_holds_the_secret_variables_only() -> None:
    secret = secret_manifest(request(), "training")

    assert secret["metadata"] == {
        "name": job_name(JOB_ID, 2),
        "namespace": "training",
        "labels": attempt_labels(JOB_ID, 2),
        # The exact job id, for the reconciler (a label may hold a hashed stand-in).
        "annotations": {"trainyard.dev/job-id": JOB_ID},
    }
    assert secret["type"] == "Opaque"
    assert secret["stringData"] == {
        "TRAINYARD_CALLBACK_TOKEN": TOKEN,
        "AWS_ACCESS_KEY_ID": S3_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    }


def test_without_s3_the_secret_holds_the_callback_token_alone() -> None:
    secret = secret_manifest(request(s3=False), "training")

    assert secret["stringData"] == {"TRAINYARD_CALLBACK_TOKEN": TOKEN}


def test_no_secret_value_appears_in_the_job_body() -> None:
    body = json.dumps(job_manifest(request(), settings()))

    for secret in (TOKEN, S3_KEY_ID, S3_SECRET):
        assert secret not in body


def test_secret_variables_come_from_the_secret_and_the_others_are_plain_values() -> None:
    the_request = request()
    env = {item["name"]: item for item in container(job_manifest(the_request, settings()))["env"]}
    name = job_name(JOB_ID, 2)

    # HOME is the pod's own: the writable scratch volume (see the read-only root test).
    assert set(env) == set(the_request.env) | {"HOME"}
    assert env["HOME"] == {"name": "HOME", "value": "/home/trainer"}
    for key in ("TRAINYARD_CALLBACK_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == {"name": key, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
    for key in set(env) - {
        "HOME",
        "TRAINYARD_CALLBACK_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }:
        assert env[key] == {"name": key, "value": the_request.env[key]}
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000"


def test_the_job_runs_the_frameworks_image_once_without_retries() -> None:
    job = job_manifest(request(), settings(k8s_ttl_seconds_after_finished=900))

    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == job_name(JOB_ID, 2)
    assert job["metadata"]["namespace"] == "training"
    assert job["metadata"]["annotations"] == {"trainyard.dev/job-id": JOB_ID}
    assert container(job)["name"] == "trainer"
    assert container(job)["image"] == "registry.example/trainer-ultralytics:1.2"
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 900
    assert pod_spec(job)["terminationGracePeriodSeconds"] == 13  # 12.5 s, rounded up


def test_the_deadline_is_the_requests_time_limit_or_the_default() -> None:
    default = settings(k8s_default_time_limit_s=3600)

    assert job_manifest(request(), default)["spec"]["activeDeadlineSeconds"] == 3600
    limited = job_manifest(request(time_limit_s=90.2), default)
    assert limited["spec"]["activeDeadlineSeconds"] == 91


def test_gpus_become_a_resource_limit_and_the_trainers_gpu_count() -> None:
    with_gpus = container(job_manifest(request(gpus=2), settings()))
    without = container(job_manifest(request(gpus=0), settings()))

    assert with_gpus["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert {"name": "TRAINYARD_GPUS", "value": "2"} in with_gpus["env"]
    assert "resources" not in without
    assert {"name": "TRAINYARD_GPUS", "value": "0"} in without["env"]


def test_scheduling_settings_are_applied_when_set() -> None:
    tolerations: list[dict[str, str | int]] = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    job = job_manifest(
        request(),
        settings(
            k8s_node_selector={"pool": "gpu"},
            k8s_tolerations=tolerations,
            k8s_priority_class="training-low",
            k8s_service_account="trainer",
        ),
    )

    assert pod_spec(job)["nodeSelector"] == {"pool": "gpu"}
    assert pod_spec(job)["tolerations"] == tolerations
    assert pod_spec(job)["priorityClassName"] == "training-low"
    assert pod_spec(job)["serviceAccountName"] == "trainer"


def test_trainer_pods_never_mount_a_service_account_token() -> None:
    # Trainers run user code and talk to the platform over HTTP only: whatever account they
    # run as (the chart's, or one named in the settings), no Kubernetes API token is mounted.
    for worker_settings in (settings(), settings(k8s_service_account="trainer")):
        assert (
            pod_spec(job_manifest(request(), worker_settings))["automountServiceAccountToken"]
            is False
        )


def test_scheduling_settings_are_omitted_when_unset() -> None:
    spec = pod_spec(job_manifest(request(), settings()))

    for key in ("nodeSelector", "tolerations", "priorityClassName", "serviceAccountName"):
        assert key not in spec


def test_disruptions_are_ignored_and_a_contract_error_fails_the_job() -> None:
    policy = job_manifest(request(), settings())["spec"]["podFailurePolicy"]

    assert {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    } in policy["rules"]
    assert {
        "action": "FailJob",
        "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [2]},
    } in policy["rules"]


def test_the_output_dir_is_a_scratch_volume_at_the_contract_path() -> None:
    job = job_manifest(request(), settings())

    assert {"name": "output", "emptyDir": {}} in pod_spec(job)["volumes"]
    assert {"name": "output", "mountPath": OUTPUT_DIR} in container(job)["volumeMounts"]


def test_trainer_pods_run_as_a_fixed_unprivileged_user_under_the_default_seccomp_profile() -> None:
    for worker_settings, uid, gid in (
        (settings(), 10001, 10001),
        (settings(k8s_run_as_user=2000, k8s_run_as_group=3000), 2000, 3000),
    ):
        assert pod_spec(job_manifest(request(), worker_settings))["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            "fsGroup": gid,
            "seccompProfile": {"type": "RuntimeDefault"},
        }


@pytest.mark.parametrize("uid", [0, -1])
def test_the_settings_refuse_root_or_a_negative_id_for_trainers(uid: int) -> None:
    with pytest.raises(ValueError, match="k8s_run_as_user"):
        settings(k8s_run_as_user=uid)
    with pytest.raises(ValueError, match="k8s_run_as_group"):
        settings(k8s_run_as_group=uid)


def test_the_trainer_cannot_gain_privileges_and_its_root_filesystem_is_read_only() -> None:
    assert container(job_manifest(request(gpus=1), settings()))["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_tmp_home_and_the_output_dir_are_the_trainers_only_writable_places() -> None:
    job = job_manifest(request(), settings())

    assert pod_spec(job)["volumes"] == [
        {"name": "tmp", "emptyDir": {}},
        {"name": "home", "emptyDir": {}},
        {"name": "output", "emptyDir": {}},
    ]
    assert container(job)["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "home", "mountPath": "/home/trainer"},
        {"name": "output", "mountPath": OUTPUT_DIR},
    ]


@pytest.mark.parametrize("output_dir", ["/tmp", "/tmp/", "/home/trainer", "s3://bucket/out"])
def test_an_output_dir_that_is_already_writable_or_remote_gets_no_volume_of_its_own(
    output_dir: str,
) -> None:
    the_request = request()
    env = {**the_request.env, "TRAINYARD_OUTPUT_DIR": output_dir}
    job = job_manifest(dataclasses.replace(the_request, env=env), settings())

    assert [volume["name"] for volume in pod_spec(job)["volumes"]] == ["tmp", "home"]
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_an_unknown_framework_names_itself_and_the_configured_ones() -> None:
    unknown = LaunchRequest(
        job_id=JOB_ID, attempt=1, framework="timm", output_dir=OUTPUT_DIR, env={}
    )

    with pytest.raises(TrainerNotInstalledError, match=r"'timm'.*configured: ultralytics"):
        job_manifest(unknown, settings())


def test_the_owner_reference_lets_the_garbage_collector_delete_the_secret_with_the_job() -> None:
    assert owner_reference("trainyard-job-1-a1", "uid-1") == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "trainyard-job-1-a1",
        "uid": "uid-1",
        "controller": False,
        "blockOwnerDeletion": True,
    }


@pytest.mark.parametrize("gpus", [0, 1, 4])
def test_the_manifests_are_valid_kubernetes_objects(gpus: int) -> None:
    # Strict: an unknown (misspelt) field fails as well as a wrong type.
    everything = settings(
        k8s_node_selector={"pool": "gpu"},
        k8s_tolerations=[{"key": "spot", "operator": "Exists", "tolerationSeconds": 30}],
        k8s_priority_class="training-low",
        k8s_service_account="trainer",
    )
    job = job_manifest(request(gpus=gpus), everything if gpus else settings())
    secret = secret_manifest(request(), "training")
    secret["metadata"]["ownerReferences"] = [owner_reference(job_name(JOB_ID, 2), "uid-1")]

    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
