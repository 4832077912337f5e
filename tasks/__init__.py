"""Prefect tasks, one module per stage: each decorates and delegates to `sluice.<stage>`.

Orchestration policy (retries, backoff, caching, result persistence) lives here and only here.
"""
