"""prefect.yaml deploys onto a real Prefect server: the deployments, their trigger and schedules."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fix_stack import REPO, SLUICE, Stack

pytestmark = [pytest.mark.services, pytest.mark.deployments]
PREFECT = str(Path(SLUICE).with_name("prefect"))


def _prefect(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PREFECT, *args],
        env={**stack.env, "PREFECT_CLI_PROMPT": "false"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_deploy_all_creates_the_deployments_with_trigger_and_schedules(stack: Stack) -> None:
    pool = _prefect(stack, "work-pool", "create", "sluice", "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stderr

    deployed = _prefect(stack, "--no-prompt", "deploy", "--all")

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployments = {
        f"{d['name']}": d
        for d in stack.api("deployments/filter", {"deployments": {"tags": {"all_": ["sluice"]}}})
        if d["work_pool_name"] == "sluice"
    }
    assert {"ingest-file", "sweep-inbox", "replay-dead-letters", "relay-outbox", "cleanup"} <= set(
        deployments
    )
    sweep = deployments["sweep-inbox"]["schedules"]
    assert [s["schedule"]["cron"] for s in sweep] == ["*/5 * * * *"]
    assert (deployments["ingest-file"]["global_concurrency_limit"] or {}).get("limit") == 4

    ingest_id = deployments["ingest-file"]["id"]
    automations = stack.api("automations/filter", {})
    owned = [
        a
        for a in automations
        if any(
            action.get("deployment_id") == ingest_id
            for action in a["actions"]
            if action["type"] == "run-deployment"
        )
    ]
    assert len(owned) == 1
    trigger = owned[0]["trigger"]
    assert trigger["expect"] == ["sluice.file.arrived"]
    assert trigger["for_each"] == ["prefect.resource.id"]
    assert trigger["match"] == {"prefect.resource.id": "sluice.file.arrival.*"}
    parameters = json.dumps(owned[0]["actions"][0]["parameters"])
    assert "{{ event.payload.path }}" in parameters and "{{ event.payload.dataset }}" in parameters

    again = _prefect(stack, "--no-prompt", "deploy", "--all")  # redeploy: nothing doubled
    assert again.returncode == 0
    automations = stack.api("automations/filter", {})
    assert (
        sum(
            1
            for a in automations
            for action in a["actions"]
            if action.get("deployment_id") == ingest_id
        )
        == 1
    )
