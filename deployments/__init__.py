"""Deployments: how flows run without a person typing a command (the file sensor and `serve`
arrive with the triggers issue; prefect.yaml at the repo root holds the work-pool deployments)."""
