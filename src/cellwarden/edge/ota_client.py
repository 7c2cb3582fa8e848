"""The device's side of the cloud's update API (docs/ota-cloud.md): ask for an update, fetch
a bundle's bytes by range, report progress and the result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

MAX_DETAIL_CHARS = 500


class UpdateServerError(RuntimeError):
    """The server could not be reached or answered something unusable (try again later)."""


class DeploymentClosedError(UpdateServerError):
    """The server no longer accepts reports for a deployment (it is final or gone)."""


@dataclass(frozen=True)
class Offer:
    """An update the cloud offers this device."""

    deployment_id: int
    bundle_id: int
    version: str
    size: int
    sha256: str
    url: str

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class UpdateServer:
    """The cloud's device API over HTTP(S) with the device's bearer token."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        self._client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )

    def close(self) -> None:
        self._client.close()

    def next_offer(self, running_version: str) -> Offer | None:
        response = self._request("GET", "/device/v1/ota/next",
                                 params={"version": running_version})  # fmt: skip
        if response.status_code == 204:
            return None
        _expect(response, 200)
        try:
            body = response.json()
            return Offer(int(body["deployment_id"]), int(body["bundle_id"]), str(body["version"]),
                         int(body["size"]), str(body["sha256"]), str(body["url"]))  # fmt: skip
        except (ValueError, KeyError, TypeError) as error:
            raise UpdateServerError(f"unusable offer from the server: {error}") from None

    def fetch(self, url: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes of the bundle from ``start``."""
        byte_range = f"bytes={start}-{start + length - 1}"
        response = self._request("GET", url, headers={"Range": byte_range})
        _expect(response, 206)
        expected = response.headers.get("content-range", "")
        if not expected.startswith(f"bytes {start}-"):
            raise UpdateServerError(f"server answered range {expected!r} for a request at {start}")
        return response.content

    def report(self, deployment_id: int, state: str, progress_pct: float | None = None,
               detail: str = "", version: str | None = None) -> None:  # fmt: skip
        body: dict[str, Any] = {"state": state, "detail": detail[:MAX_DETAIL_CHARS]}
        if progress_pct is not None:
            body["progress_pct"] = round(progress_pct, 1)
        if version is not None:
            body["version"] = version
        response = self._request(
            "POST", f"/device/v1/ota/deployments/{deployment_id}/status", json=body
        )
        if response.status_code in (404, 409):
            raise DeploymentClosedError(f"deployment {deployment_id}: {response.text[:200]}")
        _expect(response, 204)

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise UpdateServerError(f"update server unreachable: {error}") from None


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise UpdateServerError(
            f"update server answered {response.status_code} to {response.request.method} "
            f"{response.request.url.path}: {response.text[:200]}"
        )
