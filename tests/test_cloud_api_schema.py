"""The cloud API against its own OpenAPI document (/api/openapi.json), with schemathesis 4.

Every operation gets schemathesis' generated requests: its explicit examples, the coverage
phase (boundary values, missing and wrong-typed parameters, each deterministic) and Hypothesis
fuzzing of valid and invalid data. The app runs in process over a SQLite store seeded as in
tests/test_cloud_api_security.py (two organisations, packs with telemetry, alarms).

Three callers of each operation: organisation A's admin with the ids as generated (mostly
unknown: 404s), the same admin with the path parameters pinned to A's real organisation, pack,
alarm and rule (so that queries and bodies are fuzzed against real data, writes included), and
no token at all (401 for everything but /healthz). None may answer
500; a successful answer must match its documented response schema. Error answers are not
held to the document: FastAPI documents 422 as its validation-error shape, and the API's own
422s (``{"detail": "..."}``, e.g. an unknown history field) are plain text details.

Fuzzing is bounded (``max_examples`` per operation, no deadline) and derandomized with no
example database, so CI generates the same requests on every run.

schemathesis parametrizes at collection, so the document is read when the module is imported,
from an app over an empty store in a temporary folder; the generated requests go to ``LATE``,
which hands them to the app over the seeded store the ``api`` fixture sets. (The fixture-based
loader, ``schemathesis.pytest.from_fixture``, fails under pytest 9: it sets ``Item._nodeid``.)
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from tests.test_cloud_api_security import Seeded, seed

from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.store.cloud_store import open_store

MAX_EXAMPLES = 25
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class LateApp:
    """An ASGI app passing each request on to the app set in ``target``."""

    def __init__(self) -> None:
        self.target = None

    async def __call__(self, scope, receive, send) -> None:
        assert self.target is not None, "the api fixture sets the app under test"
        await self.target(scope, receive, send)


LATE = LateApp()


def _load_schema():
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/openapi.db")
        try:
            LATE.target = create_app(store)
            return schemathesis.openapi.from_asgi("/api/openapi.json", LATE)
        finally:
            LATE.target = None
            store.close()


schema = _load_schema()


@dataclass
class Api:
    app: object
    seeded: Seeded

    def auth(self, who: str = "a-admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.seeded.tokens[who]}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    path = tmp_path_factory.mktemp("api-schema") / "cloud.db"
    store = open_store(f"sqlite:///{path}")
    try:
        seeded = seed(store, path, time.time())
        LATE.target = create_app(store)
        yield Api(LATE.target, seeded)
    finally:
        LATE.target = None
        store.close()


def successful_answers_match_the_document(ctx, response, case):
    """Response-schema conformance of 2xx answers (see the module's docstring)."""
    if 200 <= response.status_code < 300:
        return response_schema_conformance(ctx, response, case)
    return None


CHECKS = [not_a_server_error, successful_answers_match_the_document]


def real_ids(api: Api) -> dict[str, object]:
    a = api.seeded.orgs["A"]
    return {"org_id": a.id, "device_id": a.device_ids[0], "alarm_id": a.alarm_ids[0],
            "rule_id": a.rule_ids[0], "fleet_id": a.fleet_ids[0],
            "campaign_id": a.campaign_ids[0], "action": "pause"}  # fmt: skip


def test_every_operation_is_in_the_document(api: Api) -> None:
    """What the generated tests below go over: every operation of the API, as the app under
    test documents it."""
    assert api.app.openapi()["paths"] == schema.raw_schema["paths"]
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert len(operations) >= 22
    assert ("GET", "/api/v1/packs/{device_id}/export") in operations
    assert ("POST", "/api/v1/alarms/{alarm_id}/acknowledge") in operations


# the callers of each operation (a pytest parameter also gives each generated test its own
# node id under pytest 9: "test_no_server_error[GET /api/v1/me][admin]")
CALLERS = ["admin", "admin on real ids", "no token"]


@schema.parametrize()
@BOUNDED
@pytest.mark.parametrize("caller", CALLERS)
def test_no_server_error(case, caller: str, api: Api) -> None:
    headers = None
    if caller == "no token":
        if case.headers:
            case.headers.pop("Authorization", None)
    else:
        headers = api.auth("a-admin")
    if caller == "admin on real ids":
        ids = real_ids(api)
        for name in list(case.path_parameters or {}):
            case.path_parameters[name] = ids[name]
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    if caller == "no token" and case.path != "/healthz":
        # 405: a method the route does not have (the coverage phase tries them); a body refused
        # before the token is looked at: 400 (not text: b"\x00\x00..."), 413 (over 64 KiB),
        # 422 (text but not JSON)
        assert response.status_code in (400, 401, 405, 413, 422), (case.method, response.text)
