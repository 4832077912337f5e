"""Prefect flows: ingest_file (one file's stages), and later the sweep and the replay flows."""
