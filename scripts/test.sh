#!/usr/bin/env bash
# The tooling (scripts/lint.sh), then the tests (pytest ARGS: all of them by default) against
# real local services; stop only the services this run started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lint.sh
services=(bash scripts/services.sh)
if "${services[@]}" status --quiet redis postgres; then
	started=0
else
	started=1
	"${services[@]}" up redis postgres
fi
stop() { if [ "$started" = 1 ]; then "${services[@]}" down redis postgres; fi; }
trap stop EXIT
export SLUICE_REQUIRE_SERVICES=1 # a missing service fails the run instead of skipping
.venv/bin/python -m pytest "$@"
