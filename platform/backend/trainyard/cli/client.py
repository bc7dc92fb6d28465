"""A small synchronous HTTP client for the public API, with errors a person can act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

import httpx

from trainyard.cli.caller import RUN_LOGIN, Caller, CallerAuth
from trainyard.cli.errors import NotSignedIn, PlatformError, PlatformNotRunning

__all__ = ["NotSignedIn", "PlatformClient", "PlatformError", "PlatformNotRunning"]


class PlatformClient:
    """The API at `caller.api_url`, every request with the caller's headers (credential and
    project: cli/caller.py)."""

    def __init__(self, caller: Caller, timeout_s: float = 30.0) -> None:
        self.api_url = caller.api_url
        self.caller = caller
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout_s, auth=CallerAuth(caller))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def create_job(self, body: dict[str, Any], idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/v1/jobs", json=body, headers=headers)

    def list_jobs(self, state: str | None = None, limit: int = 20) -> Any:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        return self._request("GET", "/v1/jobs", params=params)

    def get_job(self, job_id: str) -> Any:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def get_quota(self, project: str) -> Any:
        return self._request("GET", f"/v1/projects/{project}/quota")

    def set_quota(self, project: str, quota: dict[str, Any]) -> Any:
        return self._request("PUT", f"/v1/projects/{project}/quota", json=quota)

    def cancel_job(self, job_id: str) -> Any:
        return self._request("POST", f"/v1/jobs/{job_id}/cancel")

    def events(self, job_id: str, after_seq: int = 0) -> Any:
        return self._request("GET", f"/v1/jobs/{job_id}/events", params={"after_seq": after_seq})

    def register_dataset(self, name: str, uri: str, fmt: str = "yolo") -> Any:
        return self._request("POST", "/v1/datasets", json={"name": name, "uri": uri, "format": fmt})

    def upload_dataset(
        self, name: str, fmt: str, archive: BinaryIO, on_read: Callable[[int], None]
    ) -> Any:
        """POST a zip as multipart; `on_read(n)` is called as each chunk goes out."""
        return self._request(
            "POST",
            "/v1/datasets",
            data={"name": name, "format": fmt},
            files={"file": (f"{name}.zip", _ReadProgress(archive, on_read), "application/zip")},
            # The server extracts and validates before answering: allow it minutes.
            timeout=httpx.Timeout(self._http.timeout.connect, read=600.0, write=600.0, pool=None),
        )

    def get_dataset(self, name: str) -> Any:
        return self._request("GET", f"/v1/datasets/{name}")

    def list_datasets(self) -> Any:
        return self._request("GET", "/v1/datasets")

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"/v1/datasets/{dataset_id}")

    def me(self) -> Any:
        return self._request("GET", "/v1/me")

    def auth_config(self) -> Any:
        return self._request("GET", "/v1/auth/config")

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise PlatformNotRunning(
                f"Trainyard is not running at {self.api_url}: start it with `make dev` "
                "(or `trainyard up`), or point TRAINYARD_API_URL at a running backend."
            ) from exc
        except httpx.HTTPError as exc:
            raise PlatformError(f"{method} {path} failed: {exc}") from exc
        if response.is_success:
            return response.json() if response.content else None  # 204: no body
        if response.status_code == 401:
            raise NotSignedIn(
                f"{_describe_error(response)}; not signed in to {self.api_url}: {RUN_LOGIN}"
            )
        raise PlatformError(_describe_error(response))


def _describe_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:500]}"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{where}: {item.get('msg', item)}")
            else:
                parts.append(str(item))
        return f"HTTP {response.status_code}: " + "; ".join(parts)
    if isinstance(detail, dict):
        message = detail.get("message") or detail.get("detail") or detail
        return f"HTTP {response.status_code}: {message}"
    return f"HTTP {response.status_code}: {detail}"


class _ReadProgress:
    """A file wrapper that reports how many bytes have been read (httpx reads in chunks)."""

    def __init__(self, source: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._source = source
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._on_read(len(data))
        return data

    def fileno(self) -> int:
        # httpx sizes the body from the file, so it sends Content-Length (not chunks).
        return self._source.fileno()
