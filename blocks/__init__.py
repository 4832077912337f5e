"""Prefect blocks Sluice saves: the Redis result storage its stage tasks persist to."""
