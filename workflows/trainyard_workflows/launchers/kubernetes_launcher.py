"""Production tier: each attempt is a Kubernetes Job (batch/v1) running one trainer pod.

The Job and its Secret are named after (job, attempt) (`kubernetes_manifests.job_name`), so a
retried launch finds what an earlier try created. The Secret holds the attempt's secrets (callback
token, S3 credentials) and is owned by the Job: the garbage collector deletes it with the Job.
Kubernetes never retries a failed trainer (backoffLimit 0); the workflow does, as a new attempt.
Only a pod lost to preemption, eviction or a drain is replaced inside the same Job.

Each Job runs in its project's namespace (`kubernetes_namespaces`: decided at launch, then
carried by the attempt's handle). Needs, in the training namespace and in each project's: jobs
(create, get, list, delete), pods (list), pods/log (get), secrets (create, list, patch, delete)
and events (list).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import aiohttp
from kubernetes_asyncio.client import (
    ApiClient,
    BatchV1Api,
    CoreV1Api,
    V1Job,
    V1Pod,
    V1Secret,
)
from kubernetes_asyncio.client.rest import ApiException

from trainyard_workflows.internal_api import ExternalQueuePlace
from trainyard_workflows.launchers.base import (
    TRAINER_ENV_VARS,
    TRAINER_STORAGE_ENV_VARS,
    AttemptHandle,
    AttemptStatus,
    LaunchedObject,
    LaunchRequest,
    PendingReason,
)
from trainyard_workflows.launchers.kubernetes_client import ApiClientFactory, create_api_client
from trainyard_workflows.launchers.kubernetes_kueue import KueueHold
from trainyard_workflows.launchers.kubernetes_manifests import (
    CONTAINER_NAME,
    Manifest,
    attempt_selector,
    job_manifest,
    job_name,
    owner_reference,
    secret_manifest,
)
from trainyard_workflows.launchers.kubernetes_namespaces import namespace_of, training_namespaces
from trainyard_workflows.launchers.kubernetes_status import (
    COMPLETE,
    creation_order,
    failed_create_reason,
    finished_condition,
    is_terminal,
    launched_in,
    newest_pod,
    pod_disruption,
    pod_pending_reasons,
    tail_lines,
    trainer_exit_code,
)
from trainyard_workflows.launchers.launch_span import launch_span
from trainyard_workflows.settings import WorkerSettings

logger = logging.getLogger(__name__)

_NOT_FOUND = 404
_CONFLICT = 409
# How long `stop` waits past the grace period for the Job and its pods to disappear (image
# layers being unmounted, a slow kubelet) before it reports the attempt as still running.
_GONE_MARGIN_S = 60.0


def _body(manifest: Manifest) -> Any:
    # The client serializes plain dicts as they are; its stubs only name its model classes.
    return manifest


# How long one read of an attempt's Job and pods answers the launcher's questions (one poll).
_OBSERVATION_S = 0.25


@dataclass(frozen=True)
class _Observation:
    at: float
    job: V1Job | None
    pods: list[V1Pod]


class KubernetesLauncher:
    """Runs trainers as Kubernetes Jobs; see the module docstring."""

    def __init__(
        self,
        settings: WorkerSettings,
        client_factory: ApiClientFactory | None = None,
        *,
        poll_s: float = 1.0,
        gone_margin_s: float = _GONE_MARGIN_S,
        observation_s: float = _OBSERVATION_S,
    ) -> None:
        self._settings = settings
        # Created on first use: loading a kubeconfig is a coroutine, building the launcher is not.
        self._client_factory = client_factory or partial(create_api_client, settings)
        self._client: ApiClient | None = None
        self._client_lock = asyncio.Lock()
        self._poll_s = poll_s
        self._gone_margin_s = gone_margin_s
        self._observation_s = observation_s
        self._observed: dict[tuple[str, str], _Observation] = {}
        queue = settings.k8s_kueue_queue
        self._kueue = KueueHold(queue, observation_s) if queue else None

    async def aclose(self) -> None:
        """Close the API client (its connection pool)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def launch(self, request: LaunchRequest) -> AttemptHandle:
        unexpected = set(request.env) - TRAINER_ENV_VARS - TRAINER_STORAGE_ENV_VARS
        if unexpected:
            raise ValueError(f"not trainer-contract variables: {sorted(unexpected)}")
        with launch_span(request, "kubernetes") as traced:
            return await self._launch(traced)

    async def _launch(self, request: LaunchRequest) -> AttemptHandle:
        # Built first: an unknown framework fails before anything is created.
        job = job_manifest(request, self._settings)
        # The manifest decided where (the project's namespace): the Secret goes beside it.
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        secret = secret_manifest(request, namespace)
        where = (request.attempt, request.job_id, namespace, name)
        core, batch = await self._apis()
        await self._create_or_refresh_secret(core, secret)
        try:
            created = await batch.create_namespaced_job(namespace, _body(job))
            launched_at = time.time()
            logger.info("launched attempt %s of %s as Job %s/%s", *where)
        except ApiException as error:
            if error.status != _CONFLICT:
                raise
            created = await batch.read_namespaced_job(name, namespace)
            # The heartbeat timeout runs from the Job's creation, not from this retry.
            stamp = created.metadata.creation_timestamp
            launched_at = stamp.timestamp() if stamp is not None else time.time()
            logger.info("attempt %s of %s already launched as Job %s/%s", *where)
        # Also on a retried launch: an earlier try may have stopped right before this step.
        ownership = {"metadata": {"ownerReferences": [owner_reference(name, created.metadata.uid)]}}
        await core.patch_namespaced_secret(name, namespace, ownership)
        return self._handle(request, namespace, created, launched_at)

    async def status(self, handle: AttemptHandle) -> AttemptStatus:
        observed = await self._observe(handle)
        if observed.job is None:
            return AttemptStatus(running=False)
        finished = finished_condition(observed.job)
        if finished is None:
            return AttemptStatus(running=True)
        if finished == COMPLETE:
            return AttemptStatus(running=False, exit_code=0)
        exit_code = trainer_exit_code(newest_pod(observed.pods))
        if exit_code is None:
            # The pods were listed before the Job was read: the trainer may have ended and the
            # Job failed in between. A list taken after the verdict has the exit code.
            exit_code = trainer_exit_code(await self._newest(handle))
        return AttemptStatus(running=False, exit_code=exit_code)

    async def stop(self, handle: AttemptHandle, grace_s: float) -> AttemptStatus:
        namespace, name = self._address(handle)
        # Deciding to delete needs the Job as it is now, not as the last poll saw it.
        self._observed.pop((namespace, name), None)
        status = await self.status(handle)
        self._observed.pop((namespace, name), None)
        if not status.running:
            # Finished (kept for its logs until ttlSecondsAfterFinished) or already gone.
            return status
        _, batch = await self._apis()
        logger.info("deleting Job %s/%s (%.1fs grace)", namespace, name, grace_s)
        try:
            # Foreground: the Job stays until its pods are gone, so "Job gone" means "stopped".
            await batch.delete_namespaced_job(
                name,
                namespace,
                propagation_policy="Foreground",
                grace_period_seconds=math.ceil(grace_s),
            )
        except ApiException as error:
            if error.status != _NOT_FOUND:
                raise
            return AttemptStatus(running=False)
        return await self._wait_gone(handle, grace_s + self._gone_margin_s)

    async def log_tail(self, handle: AttemptHandle, lines: int) -> list[str]:
        pod = await self._newest(handle) if lines > 0 else None
        if pod is None:
            return []
        namespace, _ = self._address(handle)
        core, _ = await self._apis()
        # Raw body: the client would parse a log that happens to be JSON (a lone number...).
        response = cast(
            aiohttp.ClientResponse,
            await core.read_namespaced_pod_log(
                pod.metadata.name,
                namespace,
                container=CONTAINER_NAME,
                tail_lines=lines,
                _preload_content=False,
            ),
        )
        async with response:
            body = await response.read()
            if response.status != 200:
                # 400: the container has not started yet; 404: the pod is gone.
                logger.info("no log for pod %s (%s)", pod.metadata.name, response.status)
                return []
        return tail_lines(body.decode("utf-8", errors="replace"), lines)

    async def pending_reasons(self, handle: AttemptHandle) -> list[PendingReason]:
        """Why the attempt is not running yet (empty once it runs, or when it is over): an
        unschedulable pod, a container that cannot start or is being created, a pod the Job
        could not create or has not created yet."""
        observed = await self._observe(handle)
        job = observed.job
        if job is None or finished_condition(job) is not None:
            return []
        if self._kueue is not None and job.spec is not None and job.spec.suspend:
            # Kueue holds it: `queued_in` says where and why.
            return [PendingReason("Suspended", f"Kueue admits it ({self._kueue.queue})")]
        live = [pod for pod in observed.pods if not is_terminal(pod)]
        pod = newest_pod(live)
        if pod is not None:
            return pod_pending_reasons(pod)
        namespace, name = self._address(handle)
        core, _ = await self._apis()
        events = await core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.kind=Job,involvedObject.name={name}"
        )
        refusal = failed_create_reason(job, events.items or [])
        if refusal is None:
            refusal = PendingReason("Pending", "the Job has not created its pod yet")
        return [refusal]

    async def disruptions(self, handle: AttemptHandle) -> list[PendingReason]:
        observed = await self._observe(handle)
        pods = sorted(observed.pods, key=creation_order)
        taken = [reason for pod in pods if (reason := pod_disruption(pod)) is not None]
        if self._kueue is not None and observed.job is not None:
            namespace, _ = self._address(handle)
            evicted = await self._kueue.eviction(await self._raw(), namespace, observed.job)
            taken.extend([evicted] if evicted is not None else [])
        return taken

    async def queued_in(self, handle: AttemptHandle) -> ExternalQueuePlace | None:
        observed = await self._observe(handle)
        job = observed.job
        if self._kueue is None or job is None or finished_condition(job) is not None:
            return None
        if job.spec is None or not job.spec.suspend:
            return None  # admitted (or never queued): its pod runs or is being made
        namespace, _ = self._address(handle)
        return await self._kueue.place(await self._raw(), namespace, job, handle.attempt)

    async def launched_objects(self) -> list[LaunchedObject]:
        """Trainyard's Jobs and Secrets (by the managed-by label) in the training namespace and
        in each project's."""
        found: list[LaunchedObject] = []
        for namespace in training_namespaces(self._settings):
            found.extend(await launched_in(*await self._apis(), namespace))
        return found

    async def delete_launched(self, launched: LaunchedObject) -> bool:
        core, batch = await self._apis()
        try:
            if launched.kind == "Job":
                # Foreground: pods (and the Secret the Job owns) go before the Job does.
                await batch.delete_namespaced_job(
                    launched.name, launched.namespace, propagation_policy="Foreground"
                )
            elif launched.kind == "Secret":
                await core.delete_namespaced_secret(launched.name, launched.namespace)
            else:
                raise ValueError(f"not a Kubernetes object of this launcher: {launched}")
        except ApiException as error:
            if error.status == _NOT_FOUND:
                return False
            raise
        return True

    async def _wait_gone(self, handle: AttemptHandle, timeout_s: float) -> AttemptStatus:
        deadline = time.monotonic() + timeout_s
        exit_code: int | None = None
        while True:
            pods = await self._pods(handle)
            code = trainer_exit_code(newest_pod(pods))
            exit_code = code if code is not None else exit_code
            # Pods are listed before the Job is read: no pod can appear once the Job is gone.
            if not pods and await self._read_job(handle) is None:
                return AttemptStatus(running=False, exit_code=exit_code)
            if time.monotonic() >= deadline:
                where = "/".join(self._address(handle))
                logger.warning("Job %s outlived %.0fs after its deletion", where, timeout_s)
                return AttemptStatus(running=True, exit_code=exit_code)
            await asyncio.sleep(self._poll_s)

    async def _create_or_refresh_secret(self, core: CoreV1Api, secret: Manifest) -> V1Secret:
        namespace, name = secret["metadata"]["namespace"], secret["metadata"]["name"]
        try:
            return await core.create_namespaced_secret(namespace, _body(secret))
        except ApiException as error:
            if error.status != _CONFLICT:
                raise
        # A retried launch: the token is the same, but S3 credentials may have been rotated.
        return await core.patch_namespaced_secret(
            name, namespace, {"stringData": secret["stringData"]}
        )

    async def _observe(self, handle: AttemptHandle) -> _Observation:
        """The attempt's Job and pods as read within the last moment.

        One watch poll asks for the status, the pending reasons and the disruptions; they
        share one read of the Job and one list of its pods, so a poll costs two API calls
        rather than five, which matters with many jobs watched against one API server.
        """
        key = self._address(handle)
        observed = self._observed.get(key)
        if observed is None or time.monotonic() - observed.at >= self._observation_s:
            pods = await self._pods(handle)  # pods first: none can appear once the Job is gone
            observed = _Observation(time.monotonic(), await self._read_job(handle), pods)
            # Forget attempts nobody asked about for a minute (finished, stopped).
            self._observed = {
                k: v for k, v in self._observed.items() if time.monotonic() - v.at < 60
            }
            self._observed[key] = observed
        return observed

    async def _read_job(self, handle: AttemptHandle) -> V1Job | None:
        namespace, name = self._address(handle)
        _, batch = await self._apis()
        try:
            return await batch.read_namespaced_job(name, namespace)
        except ApiException as error:
            if error.status == _NOT_FOUND:
                return None
            raise

    async def _pods(self, handle: AttemptHandle) -> list[V1Pod]:
        namespace, _ = self._address(handle)
        core, _ = await self._apis()
        pods = await core.list_namespaced_pod(
            namespace, label_selector=attempt_selector(handle.job_id, handle.attempt)
        )
        return list(pods.items or [])

    async def _newest(self, handle: AttemptHandle) -> V1Pod | None:
        return newest_pod(await self._pods(handle))

    def _address(self, handle: AttemptHandle) -> tuple[str, str]:
        """(namespace, name) of the attempt's Job: every call about a launched attempt goes
        through here. A handle recorded before the Job fields existed still names its Job by
        (job, attempt)."""
        namespace = namespace_of(self._settings, handle)
        return namespace, handle.name or job_name(handle.job_id, handle.attempt)

    async def _raw(self) -> ApiClient:
        await self._apis()
        assert self._client is not None  # made by _apis
        return self._client

    async def _apis(self) -> tuple[CoreV1Api, BatchV1Api]:
        async with self._client_lock:
            if self._client is None:
                self._client = await self._client_factory()
        return CoreV1Api(self._client), BatchV1Api(self._client)

    def _handle(
        self, request: LaunchRequest, namespace: str, job: V1Job, launched_at: float
    ) -> AttemptHandle:
        return AttemptHandle(
            job_id=request.job_id,
            attempt=request.attempt,
            pid=0,
            # Where the attempt's files end up: in storage (S3) or, without it, the pod's dir.
            output_dir=request.env.get("TRAINYARD_OUTPUT_URI") or request.output_dir,
            log_path="",
            launched_at=launched_at,
            namespace=job.metadata.namespace or namespace,
            name=job.metadata.name,
        )
