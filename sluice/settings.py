"""One pydantic-settings class for the whole engine: `SLUICE_*` environment variables.

Unset, everything points at the local services `sluice services up` starts, with its files under
SLUICE_HOME (`~/.sluice`): wherever Sluice is installed, no default is a path of its checkout.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """`~/.sluice`; as root `/var/lib/sluice`: the local PostgreSQL runs as its own OS user and
    must reach its data under SLUICE_HOME, which root's private home (mode 700) forbids.
    sluice/services/services.sh has the same default."""
    return Path("/var/lib/sluice") if os.geteuid() == 0 else Path.home() / ".sluice"


def _beside_home(data: dict[str, Any]) -> Path:
    return Path(data["home"]) / "datasets.yaml"


class Settings(BaseSettings):
    """Where files and services are, and the limits the stages run under."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_", extra="ignore", populate_by_name=True)

    home: Path = Field(
        default_factory=default_home,
        description="Holds inbox/, staging/, quarantine/ and services/ (the local services).",
        json_schema_extra={"shown_default": "`~/.sluice` (as root: `/var/lib/sluice`)"},
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://sluice@127.0.0.1:55432/sluice"),
        description="PostgreSQL + TimescaleDB DSN. May carry a password: kept secret in logs.",
    )
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:56379/0"),
        description="Redis: task results, checkpoints, dead letters.",
    )
    schema_name: str = Field(
        default="public",
        validation_alias="SLUICE_SCHEMA",
        description="PostgreSQL schema that holds the dataset hypertables.",
    )
    staging_location: str = Field(
        default="",
        validation_alias="SLUICE_STAGING",
        description="Where stages put their Parquet: a folder (default `SLUICE_HOME/staging`) or "
        "an fsspec URL every worker can reach (`file:///shared/staging`, `s3://bucket/prefix`).",
    )
    datasets: Path = Field(
        default_factory=_beside_home,
        description="Dataset rules (time column, key, chunk interval); a missing file: "
        "every dataset has the defaults.",
        json_schema_extra={"shown_default": "`SLUICE_HOME/datasets.yaml`"},
    )
    prefect_api_url: str = Field(
        default="http://127.0.0.1:54200/api",
        description="The project's Prefect server, where runs go when Prefect's own "
        "PREFECT_API_URL is not set (environment or profile). The local one (`sluice services "
        "up prefect`) is started by the commands that run flows when it does not answer.",
    )
    start_services: bool = Field(
        default=True,
        description="`ingest`, `demo`, `dlq replay`, `serve` and `worker` start the local "
        "services they need that do not answer (Prefect server, and Redis or PostgreSQL when "
        "the settings name the local ones), as `sluice services up` does, and say so in one "
        "line; later commands reuse them. false: nothing is started (without a Prefect server, "
        "`ingest`, `demo` and `dlq replay` run on Prefect's ephemeral API; `serve` and `worker` "
        "stop with an error).",
    )
    batch_rows: int = Field(default=65_536, ge=1_000, le=4_000_000, description="Rows per batch.")
    result_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="Lifetime of stage results in Redis."
    )
    retries: int = Field(default=3, ge=0, le=20, description="Retries of a transient stage error.")
    retry_backoff_s: float = Field(
        default=2.0, ge=0.0, description="First retry delay; doubles each attempt, with jitter."
    )
    lock_timeout_s: float = Field(
        default=30.0, gt=0, description="How long load waits for a table lock before retrying."
    )
    file_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="Lease of a run's lock on its file, renewed while the run lives: a killed "
        "run's file is free again this long after its death.",
    )
    sensor_quiet_s: float = Field(
        default=1.0,
        ge=0,
        description="The inbox sensor announces a file once its size and mtime have not "
        "changed for this long (or at once when a `<name>.done` marker appears).",
    )
    file_wait_s: float = Field(
        default=900.0,
        ge=0,
        description="How long a run waits for another run of the same file before failing "
        "(transient: the file stays in the inbox for a later run).",
    )

    metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="Port of the Prometheus endpoint (`/metrics`) of `sluice serve` and of the "
        "sensor run alone; 0 turns it off. A port in use is logged and skipped.",
    )
    metrics_addr: str = Field(
        default="0.0.0.0", description="Address the Prometheus endpoint listens on."
    )
    progress_rows: int = Field(
        default=500_000,
        ge=0,
        description="A load of at least this many rows shows a progress artifact in its run.",
    )
    fuse_below_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="A file smaller than this runs as one task, `file` (its stages still "
        "persist their results, so it resumes after the last good one; Prefect's cost per "
        "task run outweighs a small file's stages); larger files run one task per stage. "
        "0: every file runs one task per stage.",
    )
    one_pass: bool = Field(
        default=True,
        description="A file of `SLUICE_FUSE_BELOW_BYTES` or more loads in one pass: its stages "
        "run batch by batch inside the load's transaction while PostgreSQL ingests the COPY, "
        "one task run, `onepass` (a retry runs the pass again). false: one task per stage, "
        "each resumable (as for `on_error: rows` datasets, which take that path anyway).",
    )

    @field_validator("home", "datasets")
    @classmethod
    def _expand_user(cls, path: Path) -> Path:
        return path.expanduser()

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def staging(self) -> Path | str:
        """The staging area: a local folder (a Path) or a URL (sluice/staging.py reads both)."""
        where = self.staging_location
        if not where:
            return self.home / "staging"
        return where if "://" in where else Path(where)

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    def dsn(self) -> str:
        return self.database_url.get_secret_value()


@cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
