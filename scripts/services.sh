#!/usr/bin/env bash
# The checkout's entry to the local services: the script that ships in the package
# (sluice/services/services.sh), on this checkout's .sluice/ and .venv/ unless the caller
# chose others. Installed elsewhere, `sluice services ...` runs the same script.
#
# Usage: scripts/services.sh install|up|down|status|env [redis|postgres|prefect]   (help: details)
set -euo pipefail
REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
export SLUICE_HOME=${SLUICE_HOME:-$REPO/.sluice}
if [[ -z ${SLUICE_PYTHON:-} && -x $REPO/.venv/bin/python ]]; then
	export SLUICE_PYTHON=$REPO/.venv/bin/python
fi
export SLUICE_SERVICES_COMMAND=${SLUICE_SERVICES_COMMAND:-bash $REPO/scripts/services.sh}
exec bash "$REPO/sluice/services/services.sh" "$@"
