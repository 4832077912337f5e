#!/usr/bin/env bash
# Install, start, stop and report Sluice's local development services.
#
#   redis     redis-server                 127.0.0.1:${SLUICE_REDIS_PORT:-56379}
#   postgres  PostgreSQL 15 + TimescaleDB  127.0.0.1:${SLUICE_PG_PORT:-55432}
#   prefect   Prefect server               127.0.0.1:${SLUICE_PREFECT_PORT:-54200}
#             (its UI at http://127.0.0.1:${SLUICE_PREFECT_PORT:-54200}, talking to that server's API)
#
# Usage: services.sh COMMAND [SERVICE...]   (run with "help" for details)
#
# This script ships inside the sluice package (sluice/services/); `sluice services ...` runs it
# with SLUICE_HOME and SLUICE_PYTHON (the interpreter sluice runs on) set, and a checkout's
# scripts/services.sh runs it with the checkout's .sluice/ and .venv/. Prefect is the `prefect`
# beside SLUICE_PYTHON (its environment's scripts folder), else the one on PATH; Redis and
# PostgreSQL are Debian's (PATH, /usr/lib/postgresql/15/bin).
#
# Profiles (SLUICE_PROFILE) decide how the Prefect server runs:
#   local       (default) on PostgreSQL database "prefect" of this cluster when it runs, else
#               SQLite; in-memory messaging: one server process, as `prefect server start` is.
#   production  on PostgreSQL (database $SLUICE_PREFECT_DB, default "prefect", at
#               127.0.0.1:$SLUICE_PG_PORT) with prefect-redis as messaging broker and cache,
#               causal ordering, concurrency lease storage and Docket (Redis at
#               127.0.0.1:$SLUICE_REDIS_PORT, databases $SLUICE_PREFECT_REDIS_DB and
#               $SLUICE_PREFECT_DOCKET_DB): the settings Prefect documents for several server
#               replicas. Both services must answer; they may belong to another SLUICE_HOME.
#               With SLUICE_PREFECT_API_WORKERS=N (N >= 2) the API runs as N processes
#               (`prefect server start --workers N --no-services`) beside one process of the
#               background services (`prefect server services start`), in one process group:
#               the server's work on more than one core.
#
# Everything lives under $SLUICE_HOME/services (default ~/.sluice/services; as root
# /var/lib/sluice/services, since PostgreSQL runs as its own user and cannot enter /root):
#   redis/ pg/data/ prefect/ (service state), run/ (pidfiles, PostgreSQL socket), log/.
# Processes are only ever stopped by the pid in their own pidfile.
#
# This file holds the settings, the helpers and the commands; the jobs are files beside it:
# install.sh (Debian packages, the TimescaleDB build), processes.sh (start, stop and report each
# service) and profiles.sh (how the Prefect server runs under each profile).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

PROG=${0##*/}
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# How to run this script again, for messages (`sluice services` sets "sluice services").
SELF=${SLUICE_SERVICES_COMMAND:-bash $SCRIPT_DIR/$PROG}

# The default home is sluice.settings' default: keep the two the same.
if [[ -z ${SLUICE_HOME:-} ]]; then
	if [[ $EUID -eq 0 ]]; then SLUICE_HOME=/var/lib/sluice; else SLUICE_HOME=${HOME:?HOME is unset: set SLUICE_HOME}/.sluice; fi
fi
[[ $SLUICE_HOME == /* ]] || SLUICE_HOME=$PWD/$SLUICE_HOME
SVC_DIR=$SLUICE_HOME/services
RUN_DIR=$SVC_DIR/run
LOG_DIR=$SVC_DIR/log
REDIS_DIR=$SVC_DIR/redis
PG_DIR=$SVC_DIR/pg
PG_DATA=$PG_DIR/data
PREFECT_DIR=$SVC_DIR/prefect

HOST=127.0.0.1
REDIS_PORT=${SLUICE_REDIS_PORT:-56379}
PG_PORT=${SLUICE_PG_PORT:-55432}
PREFECT_PORT=${SLUICE_PREFECT_PORT:-54200}
PROFILE=${SLUICE_PROFILE:-local}
PREFECT_DB=${SLUICE_PREFECT_DB:-prefect}
PREFECT_REDIS_DB=${SLUICE_PREFECT_REDIS_DB:-1}
PREFECT_DOCKET_DB=${SLUICE_PREFECT_DOCKET_DB:-2}
PREFECT_API_WORKERS=${SLUICE_PREFECT_API_WORKERS:-1}
# Prefect's block types registered in its database once (what an API process does at start)
PREFECT_REGISTER_BLOCKS='
import asyncio
from prefect.server.database import provide_database_interface
from prefect.server.models.block_registration import run_block_auto_registration
async def main():
    async with await provide_database_interface().session() as session:
        await run_block_auto_registration(session=session)
        await session.commit()
asyncio.run(main())
'

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BIN/pg_config
PG_OS_USER=postgres   # owner of the cluster when this script runs as root
PG_SUPERUSER=postgres # superuser role created by initdb
PG_APP_USER=sluice    # role and database the application uses
PG_APP_DB=sluice

PREFECT_BIN='' # set by find_prefect

CACHE_DIR=${SLUICE_CACHE:-${HOME:-/tmp}/.cache/sluice}
TSDB_SUITE=${SLUICE_TIMESCALEDB_SUITE:-trixie}
DEBIAN_MIRROR=${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

STOP_TIMEOUT=${SLUICE_STOP_TIMEOUT:-30}
REDIS_START_TIMEOUT=20
PG_START_TIMEOUT=60
PREFECT_START_TIMEOUT=${SLUICE_PREFECT_START_TIMEOUT:-90} # seconds; API processes start one by one

ALL_SERVICES=(redis postgres prefect)
REDIS_PKGS=(redis-server redis-tools)
PG_PKGS=("postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR")
PREFECT_PKGS=(curl)
BROWSER_PKGS=(chromium) # not a service: the headless browser the UI test opens the Prefect UI in
TSDB_BUILD_PKGS=("postgresql-server-dev-$PG_MAJOR" cmake gcc make libc6-dev libssl-dev xz-utils)

APT_UPDATED=0
CLEANUP_DIRS=()
TSDB_TARBALL='' # set by tsdb_build

# ---------------------------------------------------------------- helpers

log() { printf '%s\n' "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
usage_error() {
	usage >&2
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 2
}

cleanup() {
	local d
	for d in "${CLEANUP_DIRS[@]}"; do
		rm -rf -- "$d"
	done
}
trap cleanup EXIT

is_root() { [[ $EUID -eq 0 ]]; }

# Last lines of a log file, indented, on stderr.
log_tail() {
	local file=$1
	if [[ -s $file ]]; then
		log "--- last lines of $file:"
		tail -n "${2:-30}" -- "$file" | sed 's/^/  | /' >&2
	else
		log "--- $file is empty or missing"
	fi
}

# wait_until TIMEOUT CHECK...: run CHECK until it returns 0 (ready). CHECK returns 1 for
# "not yet" and anything else for "give up now" (e.g. the process died), so checks
# built on other tools must map their "not answering" to 1.
wait_until() {
	local timeout=$1 deadline rc
	shift
	deadline=$((SECONDS + timeout))
	while :; do
		"$@" && return 0
		rc=$?
		((rc == 1)) || return "$rc"
		((SECONDS < deadline)) || return 1
		sleep 0.25
	done
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pid_alive PID [COMM]: PID is a live (non-zombie) process, named COMM if given.
pid_alive() {
	local pid=$1 comm=${2:-} stat state name
	[[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	state=${stat##*) }
	state=${state%% *}
	[[ $state != [ZX] ]] || return 1
	if [[ -n $comm ]]; then
		name=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
		[[ $name == "$comm" ]] || return 1
	fi
}

# pidfile_pid FILE [COMM]: print the pid on FILE's first line if that process is alive.
pidfile_pid() {
	local file=$1 pid=''
	[[ -r $file ]] || return 1
	read -r pid <"$file" || true
	pid_alive "$pid" "${2:-}" || return 1
	printf '%s\n' "$pid"
}

# Take an exclusive lock on FILE as file descriptor FD (8 or 9). Services are started
# with both descriptors closed so that they never inherit the lock.
take_lock() {
	local fd=$1 file=$2
	mkdir -p -- "$(dirname -- "$file")"
	eval "exec $fd>>\"\$file\""
	if ! flock -n "$fd"; then
		log "waiting for another $PROG holding $file ..."
		flock -w 900 "$fd" || die "timed out waiting for lock $file"
	fi
}

# Mark the start of an attempt in a service's log, so that a failure's log tail is readable.
log_marker() {
	printf '\n===== %s: %s starting (%s up)\n' "$(date '+%F %T')" "$1" "$PROG" >>"$2"
}

# Run a PostgreSQL server program as the cluster's owner, from the pg/ folder.
pg_as_owner() {
	if is_root; then
		(cd -- "$PG_DIR" && runuser -u "$PG_OS_USER" -- "$@")
	else
		(cd -- "$PG_DIR" && "$@")
	fi
}

# The jobs, one file each beside this one (shipped with it in the package).
# shellcheck source=install.sh
source "$SCRIPT_DIR/install.sh"
# shellcheck source=processes.sh
source "$SCRIPT_DIR/processes.sh"
# shellcheck source=profiles.sh
source "$SCRIPT_DIR/profiles.sh"

# ---------------------------------------------------------------- commands

usage() {
	cat <<EOF
Usage: $PROG COMMAND [SERVICE...]

Commands:
  install   install missing Debian packages and build/install TimescaleDB (as root;
            as another user only check and say what is missing); without names also
            chromium, the headless browser of the UI test (install chromium: only that)
  up        install-check, then start the services that are not running and wait for them
  down      stop the services (by the pids in their pidfiles)
  status    one line per service; exit 0 if all are running, 3 otherwise (--quiet: no output)
  env       print export lines for SLUICE_HOME, SLUICE_DATABASE_URL, SLUICE_REDIS_URL,
            PREFECT_API_URL

Services: redis postgres prefect (default: all)

Profiles: SLUICE_PROFILE=local (default: the Prefect server on this cluster's PostgreSQL when
  it runs, else SQLite; in-memory messaging) or production (PostgreSQL database
  SLUICE_PREFECT_DB (prefect) with Redis messaging, cache, causal ordering, lease storage and
  Docket in Redis databases SLUICE_PREFECT_REDIS_DB (1) and SLUICE_PREFECT_DOCKET_DB (2)).

Environment: SLUICE_HOME (default ~/.sluice; as root /var/lib/sluice; now $SLUICE_HOME),
  SLUICE_SERVICES_CHECK_ONLY (set: up never installs, as root too; it says what is missing),
  SLUICE_PYTHON (the Python whose environment holds prefect), SLUICE_REDIS_PORT (56379),
  SLUICE_PG_PORT (55432), SLUICE_PREFECT_PORT (54200), SLUICE_CACHE (~/.cache/sluice),
  SLUICE_TIMESCALEDB_VERSION (pick a cached build), SLUICE_TIMESCALEDB_SUITE (trixie),
  SLUICE_DEBIAN_MIRROR (http://deb.debian.org/debian), SLUICE_STOP_TIMEOUT (30)
EOF
}

# ordered ORDER... -- REQUESTED...: REQUESTED in ORDER, without duplicates.
ordered() {
	local -a order=() requested=()
	local s r
	while [[ $1 != -- ]]; do
		order+=("$1")
		shift
	done
	shift
	requested=("$@")
	for s in "${order[@]}"; do
		for r in "${requested[@]}"; do
			if [[ $r == "$s" ]]; then
				printf '%s\n' "$s"
				break
			fi
		done
	done
}

cmd_install() {
	ensure_installed install "$@"
	log "install: everything needed for: $* is present"
}

cmd_up() {
	local s
	ensure_installed up "$@"
	make_dirs
	take_lock 9 "$SVC_DIR/.lock"
	for s in "$@"; do
		case $s in
		redis) redis_start ;;
		postgres) pg_start ;;
		prefect) prefect_start ;;
		esac
	done
}

cmd_down() {
	local s rc=0
	if [[ -d $SVC_DIR ]]; then
		take_lock 9 "$SVC_DIR/.lock"
	fi
	for s in "$@"; do
		case $s in
		prefect) prefect_stop || rc=1 ;;
		postgres) pg_stop || rc=1 ;;
		redis) redis_stop || rc=1 ;;
		esac
	done
	return "$rc"
}

cmd_status() {
	local quiet=$1 s rc=0 line
	shift
	for s in "$@"; do
		case $s in
		redis) line=$(redis_status) || rc=3 ;;
		postgres) line=$(pg_status) || rc=3 ;;
		prefect) line=$(prefect_status) || rc=3 ;;
		esac
		((quiet)) || printf '%s\n' "$line"
	done
	return "$rc"
}

cmd_env() {
	printf 'export %s=%q\n' \
		SLUICE_HOME "$SLUICE_HOME" \
		SLUICE_DATABASE_URL "postgresql://$PG_APP_USER@$HOST:$PG_PORT/$PG_APP_DB" \
		SLUICE_REDIS_URL "redis://$HOST:$REDIS_PORT/0" \
		PREFECT_API_URL "http://$HOST:$PREFECT_PORT/api"
}

main() {
	local cmd=${1:-} quiet=0 a
	[[ $PROFILE == local || $PROFILE == production ]] || usage_error "SLUICE_PROFILE must be local or production, got '$PROFILE'"
	local -a services=() list=()
	[[ $# -gt 0 ]] && shift
	for a in "$@"; do
		case $a in
		-q | --quiet) quiet=1 ;;
		-h | --help)
			usage
			return 0
			;;
		redis | postgres | prefect) services+=("$a") ;;
		chromium)
			[[ $cmd == install ]] || usage_error "chromium is installed, not started: use install chromium"
			services+=(chromium)
			;;
		pg | postgresql) services+=(postgres) ;;
		*) usage_error "unknown service or option: $a" ;;
		esac
	done
	if ((!${#services[@]})); then
		services=("${ALL_SERVICES[@]}")
		[[ $cmd == install ]] && services+=(chromium)
	fi

	case $cmd in
	down | stop) mapfile -t list < <(ordered prefect postgres redis -- "${services[@]}") ;;
	*) mapfile -t list < <(ordered redis postgres prefect chromium -- "${services[@]}") ;;
	esac

	case $cmd in
	install) cmd_install "${list[@]}" ;;
	up | start) cmd_up "${list[@]}" ;;
	down | stop) cmd_down "${list[@]}" ;;
	status) cmd_status "$quiet" "${list[@]}" ;;
	env) cmd_env ;;
	help | -h | --help) usage ;;
	'') usage_error "no command given" ;;
	*) usage_error "unknown command: $cmd" ;;
	esac
}

# Sourced (a test of its functions), it defines them and runs nothing.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
