"""The JSON API of a running agent on the simulated plant, checked against its OpenAPI doc.

Every response is validated with jsonschema against the schema the served document gives
for its path and status. Schemathesis was measured for this instead (2026-12, this
machine): 23 s to install, 68 MB and about 30 packages more in the venv, 0.36 s to
import, for six GET endpoints with three query parameters; not worth it in CI.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.web.conftest import TOKEN, SiteAgent, fetch, wait_for


@pytest.fixture(scope="module")
def openapi(site: SiteAgent) -> dict[str, Any]:
    reply = site.get("/api/v1/openapi.json", token=None)
    assert reply.status == 200
    doc: dict[str, Any] = reply.json()
    return doc


def valid(doc: dict[str, Any], path: str, data: Any, status: str = "200") -> Any:
    """Validate ``data`` against the response schema the document gives for ``path``."""
    content = doc["paths"][path]["get"]["responses"][status]["content"]
    schema = {**content["application/json"]["schema"], "components": doc["components"]}
    Draft202012Validator(schema).validate(data)
    return data


def test_document_lists_every_endpoint(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.1")
    for path in ("status", "signals", "signals/{name}/history", "assets", "alerts", "config"):
        assert f"/api/v1/{path}" in openapi["paths"]
    Draft202012Validator.check_schema({"$defs": openapi["components"]["schemas"]})


def test_status_names_each_source_and_sink(site: SiteAgent, openapi: dict[str, Any]) -> None:
    data = valid(openapi, "/api/v1/status", site.get("/api/v1/status").json())
    assert data["agent"]["id"] == "site-test"
    assert len(data["agent"]["config_hash"]) == 12
    (pump,) = data["sources"]
    assert (pump["name"], pump["type"], pump["link"]) == ("pump1", "modbus", "up")
    assert pump["last_good_read_at"] is not None and pump["reads"] > 0
    (sink,) = data["sinks"]
    assert (sink["name"], sink["connection"], sink["backlog_rows"]) == ("local", "connected", 0)


def test_signals_are_the_twins_latest_values(site: SiteAgent, openapi: dict[str, Any]) -> None:
    data = valid(openapi, "/api/v1/signals", site.get("/api/v1/signals").json())
    by_name = {s["name"]: s for s in data["signals"]}
    current = by_name["pump1.motor_current"]
    assert current["unit"] == "A" and current["quality"] == "good" and not current["stale"]
    assert current["source"] == "pump1"
    assert current["register"] == "unit 1 holding 0 float32 ABCD (2 registers)"
    assert "detect.pump1.health" in by_name


def test_a_modbus_value_shows_the_words_behind_it(site: SiteAgent) -> None:
    """The raw registers as last read: float32 ABCD words decode to a value near the twin's."""
    by_name = {s["name"]: s for s in site.get("/api/v1/signals").json()["signals"]}
    words = by_name["pump1.motor_current"]["words"]
    assert len(words) == 2 and all(0 <= w <= 0xFFFF for w in words)
    (decoded,) = struct.unpack(">f", struct.pack(">HH", *words))
    assert decoded == pytest.approx(by_name["pump1.motor_current"]["value"], rel=0.5)
    assert by_name["detect.pump1.health"]["words"] is None  # not a Modbus value


def test_history_raw_and_rollups(site: SiteAgent, openapi: dict[str, Any]) -> None:
    path = "/api/v1/signals/{name}/history"
    raw = valid(openapi, path, site.get("/api/v1/signals/pump1.flow/history?since=1h").json())
    assert raw["rollups"] is False and len(raw["ts"]) == len(raw["value"]) > 0
    assert raw["ts"] == sorted(raw["ts"])
    url = "/api/v1/signals/pump1.flow/history?since=10m&rollups=true"
    rolled = valid(openapi, path, site.get(url).json())
    assert rolled["rollups"] is True and sum(rolled["count"]) > 0
    since = raw["ts"][-1]
    later = site.get(f"/api/v1/signals/pump1.flow/history?since={since}").json()
    assert later["ts"][0] >= since


def test_history_of_unknown_signal_and_bad_since(site: SiteAgent, openapi: dict[str, Any]) -> None:
    path = "/api/v1/signals/{name}/history"
    missing = site.get("/api/v1/signals/nope.nothing/history")
    assert missing.status == 404
    valid(openapi, path, missing.json(), "404")
    bad = site.get("/api/v1/signals/pump1.flow/history?since=yesterday")
    assert bad.status == 400
    valid(openapi, path, bad.json(), "400")


def test_assets_and_alerts(site: SiteAgent, openapi: dict[str, Any]) -> None:
    assets = valid(openapi, "/api/v1/assets", site.get("/api/v1/assets").json())
    (pump,) = assets["assets"]
    assert pump["name"] == "pump1"
    assert pump["rules"] == ["pump1-silent", "bearing-hot", "pump1-down"]  # built-in last
    assert pump["signals"][0] == "pump1.motor_current"
    wait_for(lambda: site.get("/api/v1/assets").json()["assets"][0]["score"] is not None)
    for state in ("open", "all"):
        data = site.get(f"/api/v1/alerts?state={state}").json()
        valid(openapi, "/api/v1/alerts", data)
    assert site.get("/api/v1/alerts?state=closed").status == 400


def test_config_is_redacted(site: SiteAgent, openapi: dict[str, Any]) -> None:
    reply = site.get("/api/v1/config")
    data = valid(openapi, "/api/v1/config", reply.json())
    assert data["config"]["web"]["token"] == "**********"
    assert TOKEN.encode() not in reply.body


@pytest.mark.parametrize(
    "path", ["/api/v1/status", "/api/v1/signals", "/api/v1/alerts", "/metrics"]
)
def test_token_required(site: SiteAgent, path: str) -> None:
    for token in (None, "wrong"):
        reply = site.get(path, token=token)
        assert reply.status == 401, (path, token)
        assert reply.headers["www-authenticate"].startswith("Bearer")


def test_page_needs_no_token_and_carries_security_headers(site: SiteAgent) -> None:
    page = site.get("/", token=None)
    assert page.status == 200 and b"<script src=" in page.body
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    api = site.get("/api/v1/status")
    assert api.headers["cache-control"] == "no-store" and "content-security-policy" in api.headers


def test_read_only(site: SiteAgent) -> None:
    for method in ("POST", "PUT", "DELETE"):
        reply = fetch(site.url + "api/v1/status", {"Authorization": f"Bearer {TOKEN}"}, method)
        assert reply.status == 405, method


def test_metrics_on_the_same_port(site: SiteAgent) -> None:
    reply = site.get("/metrics")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    assert 'edge_agent_source_connected{source="pump1"} 1.0' in text
    assert 'edge_agent_outbox_backlog_rows{class="alert",sink="local"}' in text


def _check_config(tmp_path: Path, web: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "agent.yaml"
    path.write_text(f"agent:\n  data_dir: {tmp_path}\n{web}")
    command = [sys.executable, "-m", "edge_agent", "check-config", "-c", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("web", "line", "says"),
    [
        ("web:\n  listen: 0.0.0.0:8470\n", 4, "web.listen: '0.0.0.0:8470' is not a loopback"),
        ("web:\n  allow_remote: true\n  listen: 192.0.2.7:8470\n", 5, "set token"),
        ("metrics:\n  listen: 127.0.0.1:9108\n", 4, "moved to the web: section"),
    ],
)
def test_unsafe_or_moved_addresses_are_config_errors(
    tmp_path: Path, web: str, line: int, says: str
) -> None:
    result = _check_config(tmp_path, web)
    assert result.returncode == 78, result.stderr
    assert f"agent.yaml:{line}" in result.stderr and says in result.stderr
    assert "Traceback" not in result.stderr


def test_remote_address_with_token_accepted(tmp_path: Path) -> None:
    web = "web:\n  listen: 0.0.0.0:8470\n  allow_remote: true\n  token: abc\n"
    result = _check_config(tmp_path, web)
    assert result.returncode == 0, result.stderr
