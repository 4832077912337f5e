"""Which of the settings' services are the local ones `sluice services` runs (and a command may
start): loopback at services.sh's port for it, in URL or key=value form; anything else never."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from sluice.services import local
from sluice.settings import Settings


@pytest.mark.parametrize(
    "name, url, expected",
    [
        ("postgres", "postgresql://sluice@127.0.0.1:55432/sluice", True),
        ("postgres", "postgresql://sluice@localhost:55432/other_db", True),  # the same cluster
        ("postgres", "host=127.0.0.1 port=55432 dbname=sluice user=sluice", True),
        ("postgres", "postgresql://sluice@127.0.0.1:5432/sluice", False),  # another port
        ("postgres", "postgresql://sluice@db.example.com:55432/sluice", False),  # another host
        ("postgres", "host=/var/run/postgresql dbname=sluice", False),  # a socket
        ("redis", "redis://127.0.0.1:56379/11", True),
        ("redis", "redis://10.0.0.5:56379/0", False),
        ("prefect", "http://127.0.0.1:54200/api", True),
        ("prefect", "http://127.0.0.1:4200/api", False),
        ("prefect", "https://api.prefect.cloud/api/accounts/a/workspaces/w", False),
    ],
)
def test_only_services_sh_addresses_are_local(
    name: str, url: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("SLUICE_REDIS_PORT", "SLUICE_PG_PORT", "SLUICE_PREFECT_PORT"):
        monkeypatch.delenv(variable, raising=False)  # the default ports, whatever the shell set
    assert local.is_local(name, url) is expected


def test_the_ports_follow_services_sh_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_PG_PORT", "45432")

    assert local.is_local("postgres", "postgresql://sluice@127.0.0.1:45432/sluice")
    assert not local.is_local("postgres", "postgresql://sluice@127.0.0.1:55432/sluice")


def test_the_sink_services_named_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLUICE_REDIS_PORT", "SLUICE_PG_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        database_url=SecretStr("postgresql://app@db.internal:5432/app"),
        redis_url=SecretStr("redis://127.0.0.1:56379/0"),
    )

    assert local.local_sink(settings) == ["redis"]
