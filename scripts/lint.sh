#!/usr/bin/env bash
# The tooling every change passes (`make lint`, and first in `make test`): formatting, lint
# rules, strict types on every package, shellcheck on every script.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v shellcheck >/dev/null; then
	if [[ $EUID -ne 0 ]]; then
		echo "lint: shellcheck is missing: install the Debian package shellcheck (as root)" >&2
		exit 1
	fi
	echo "lint: apt-get install shellcheck" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get -q -o DPkg::Lock::Timeout=300 update >&2
	apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends shellcheck >&2
fi
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
shellcheck -x sluice/services/*.sh scripts/*.sh
