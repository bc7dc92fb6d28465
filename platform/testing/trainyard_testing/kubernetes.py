"""Kubernetes for the tests: kmock's emulator serving the Kubernetes API over real HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import kmock

# The kinds the launcher lists: a list of a kind with no object yet answers an empty list.
DECLARED_KINDS = (
    ("Job", "batch/v1/jobs"),
    ("Pod", "v1/pods"),
    ("Secret", "v1/secrets"),
    ("Event", "v1/events"),
)


def _matches(item: dict[str, Any], selector: str, *, dotted: bool) -> bool:
    for term in filter(None, selector.split(",")):
        key, sep, wanted = term.partition("=")
        if not sep or key.endswith("!"):
            raise NotImplementedError(f"selector term {term!r} is not an equality")
        if dotted:  # field selector: a path into the object
            value: Any = item
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        else:
            value = item.get("metadata", {}).get("labels", {}).get(key)
        if value != wanted:
            return False
    return True


class KubernetesApi(kmock.KubernetesEmulator):
    """The emulator plus what the launcher relies on from a real API server: a uid and a
    creationTimestamp on created objects, label and field selectors on lists, and the
    `foregroundDeletion` finalizer a foreground delete puts on the object."""

    async def _handle(self, request: kmock.Request) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            metadata = request.data.setdefault("metadata", {})
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", _now())
        foreground = request.params.get("propagationPolicy") == "Foreground"
        if request.action == kmock.action.DELETE and foreground and request.resource:
            key = (request.resource, request.namespace, request.name or "")
            if key in self.objects and not self.objects[key].deleted:
                self.objects[key].patch({"metadata": {"finalizers": ["foregroundDeletion"]}})
        return await super()._handle(request)

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        listing = await super()._serve_list(request)
        assert isinstance(listing, dict)
        labels, fields = request.params.get("labelSelector"), request.params.get("fieldSelector")
        listing["items"] = [
            item
            for item in listing["items"]
            if _matches(item, labels or "", dotted=False)
            and _matches(item, fields or "", dotted=True)
        ]
        return listing


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def declare_kinds(server: KubernetesApi) -> None:
    for kind, resource in DECLARED_KINDS:
        server.resources[resource] = kmock.ResourceInfo(namespaced=True, kind=kind)
