"""The API client of the configured cluster (kubeconfig file or in-cluster service account)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration

from trainyard_workflows.settings import WorkerSettings

ApiClientFactory = Callable[[], Awaitable[ApiClient]]


async def create_api_client(settings: WorkerSettings) -> ApiClient:
    """The client of the configured cluster: the kubeconfig file TRAINYARD_K8S_KUBECONFIG if
    set, else the pod's service account (the worker runs in the cluster)."""
    configuration = Configuration()
    if settings.k8s_kubeconfig is not None:
        await config.load_kube_config(
            config_file=str(settings.k8s_kubeconfig.expanduser()),
            client_configuration=configuration,
            persist_config=False,
        )
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return ApiClient(configuration)
