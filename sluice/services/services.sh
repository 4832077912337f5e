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

# ---------------------------------------------------------------- packages

pkg_installed() {
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# apt_ensure PKG...: as root, apt-get install whichever of PKG are missing.
apt_ensure() {
	local p missing=()
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	is_root || die "missing Debian packages: ${missing[*]}; run as root: $SELF install"
	export DEBIAN_FRONTEND=noninteractive
	if ((!APT_UPDATED)); then
		log "apt-get update"
		apt-get -q -o DPkg::Lock::Timeout=300 update >&2
		APT_UPDATED=1
	fi
	log "apt-get install ${missing[*]}"
	apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends "${missing[@]}" >&2
}

pg_sharedir() {
	if [[ -x $PG_CONFIG ]]; then "$PG_CONFIG" --sharedir; else echo "/usr/share/postgresql/$PG_MAJOR"; fi
}
pg_pkglibdir() {
	if [[ -x $PG_CONFIG ]]; then "$PG_CONFIG" --pkglibdir; else echo "/usr/lib/postgresql/$PG_MAJOR/lib"; fi
}

tsdb_installed() {
	[[ -f $(pg_sharedir)/extension/timescaledb.control && -f $(pg_pkglibdir)/timescaledb.so ]]
}

# Newest cached build for this PostgreSQL major (or $SLUICE_TIMESCALEDB_VERSION's).
tsdb_cached_tarball() {
	local f found=()
	if [[ -n ${SLUICE_TIMESCALEDB_VERSION:-} ]]; then
		f=$CACHE_DIR/timescaledb-$SLUICE_TIMESCALEDB_VERSION-pg$PG_MAJOR.tar.gz
		[[ -f $f ]] && printf '%s\n' "$f"
		return 0
	fi
	for f in "$CACHE_DIR"/timescaledb-*-pg"$PG_MAJOR".tar.gz; do
		[[ -f $f ]] && found+=("$f")
	done
	((${#found[@]})) || return 0
	printf '%s\n' "${found[@]}" | sort -V | tail -n 1
}

# Build TimescaleDB (Apache-2.0 edition) from Debian's source package into a tarball of
# the files "make install" puts under /; set TSDB_TARBALL to its path. (Not to be run in
# a $(...) subshell: it registers its work folder for the EXIT trap.)
tsdb_build() {
	local work src orig version tarball buildlog
	local -a apt_opts origs
	apt_ensure "${TSDB_BUILD_PKGS[@]}" "${PG_PKGS[@]}"
	mkdir -p -- "$CACHE_DIR"
	work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-timescaledb.XXXXXX")
	CLEANUP_DIRS+=("$work")
	buildlog=$CACHE_DIR/timescaledb-build.log
	: >"$buildlog"
	mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/dl" "$work/src" "$work/stage"

	# A private apt configuration that only knows the source suite: the system's
	# sources, lists and cache stay untouched.
	if [[ -f $DEBIAN_KEYRING ]]; then
		printf 'deb-src [signed-by=%s] %s %s main\n' "$DEBIAN_KEYRING" "$DEBIAN_MIRROR" "$TSDB_SUITE"
	else
		printf 'deb-src %s %s main\n' "$DEBIAN_MIRROR" "$TSDB_SUITE"
	fi >"$work/apt/sources.list"
	apt_opts=(
		-q
		-o "Dir::Etc::sourcelist=$work/apt/sources.list"
		-o Dir::Etc::sourceparts=/dev/null
		-o "Dir::State::lists=$work/apt/lists"
		-o "Dir::Cache=$work/apt/cache"
		-o APT::Sandbox::User=root
	)
	log "timescaledb: fetching the source package from Debian $TSDB_SUITE"
	if ! { apt-get "${apt_opts[@]}" update &&
		(cd -- "$work/dl" && apt-get "${apt_opts[@]}" source --download-only timescaledb); } >>"$buildlog" 2>&1; then
		log_tail "$buildlog"
		die "could not download the timescaledb source package from $DEBIAN_MIRROR ($TSDB_SUITE)"
	fi
	origs=("$work"/dl/timescaledb_*.orig.tar.*)
	[[ ${#origs[@]} -eq 1 && -f ${origs[0]} ]] || die "expected one timescaledb_*.orig.tar.* in the download, got: ${origs[*]}"
	orig=${origs[0]}
	src=$work/src/timescaledb
	mkdir -p -- "$src"
	tar -xf "$orig" -C "$src" --strip-components=1

	log "timescaledb: building $(basename -- "$orig") against PostgreSQL $PG_MAJOR (20-60 s on 2 cores; log: $buildlog)"
	if ! (
		cd -- "$src"
		BUILD_FORCE_REMOVE=true ./bootstrap \
			-DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DAPACHE_ONLY=1 \
			-DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="$PG_CONFIG" </dev/null
		make -C build -j"${SLUICE_BUILD_JOBS:-$(nproc)}"
		make -C build install DESTDIR="$work/stage"
	) >>"$buildlog" 2>&1; then
		log_tail "$buildlog" 40
		die "building timescaledb failed"
	fi

	version=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" \
		"$work/stage$(pg_sharedir)/extension/timescaledb.control" 2>/dev/null || true)
	[[ -n $version ]] || die "build finished but installed no timescaledb.control (see $buildlog)"
	tarball=$CACHE_DIR/timescaledb-$version-pg$PG_MAJOR.tar.gz
	tar -C "$work/stage" --owner=0 --group=0 --numeric-owner -czf "$tarball.tmp.$$" .
	mv -f -- "$tarball.tmp.$$" "$tarball"
	log "timescaledb: cached build in $tarball"
	TSDB_TARBALL=$tarball
}

# As root: make sure the TimescaleDB extension is installed, from the cache if possible.
tsdb_ensure() {
	local tarball
	tsdb_installed && return 0
	is_root || return 1
	take_lock 8 "$CACHE_DIR/.lock"
	if ! tsdb_installed; then
		tarball=$(tsdb_cached_tarball)
		if [[ -n $tarball ]]; then
			log "timescaledb: installing cached build $tarball"
			if ! tar -xzf "$tarball" -C / --no-same-owner --no-overwrite-dir; then
				log "timescaledb: cached build $tarball is unreadable; removing it and rebuilding"
				rm -f -- "$tarball"
				tarball=''
			fi
		fi
		if [[ -z $tarball ]]; then
			tsdb_build
			tarball=$TSDB_TARBALL
			log "timescaledb: installing $tarball"
			tar -xzf "$tarball" -C / --no-same-owner --no-overwrite-dir
		fi
		tsdb_installed || die "timescaledb is still missing from $(pg_sharedir)/extension after installing $tarball"
	fi
	flock -u 8
}

# ensure_installed MODE SERVICE...: MODE "install" warns where "up" fails (prefect's venv).
# As root it installs what is missing, unless SLUICE_SERVICES_CHECK_ONLY is set (a command that
# starts the services it needs, `sluice ingest`, never installs Debian packages): then, as for
# another user, it only says what is missing.
ensure_installed() {
	local mode=$1 s missing=()
	shift
	local -a pkgs=()
	for s in "$@"; do
		case $s in
		redis) pkgs+=("${REDIS_PKGS[@]}") ;;
		postgres) pkgs+=("${PG_PKGS[@]}") ;;
		prefect) pkgs+=("${PREFECT_PKGS[@]}") ;;
		chromium) pkgs+=("${BROWSER_PKGS[@]}") ;;
		esac
	done
	if is_root && [[ -z ${SLUICE_SERVICES_CHECK_ONLY:-} ]]; then
		if ((${#pkgs[@]})); then
			apt_ensure "${pkgs[@]}"
		fi
		for s in "$@"; do
			if [[ $s == postgres ]]; then
				tsdb_ensure
			fi
		done
	else
		for s in "$@"; do
			case $s in
			redis)
				command -v redis-server >/dev/null || missing+=("redis-server (Debian package redis-server)")
				;;
			postgres)
				[[ -x $PG_BIN/postgres ]] || missing+=("$PG_BIN/postgres (Debian package postgresql-$PG_MAJOR)")
				tsdb_installed || missing+=("the timescaledb extension ($(pg_sharedir)/extension/timescaledb.control)")
				;;
			prefect)
				command -v curl >/dev/null || missing+=("curl (Debian package curl)")
				;;
			chromium)
				command -v chromium >/dev/null || missing+=("chromium (Debian package chromium)")
				;;
			esac
		done
		if ((${#missing[@]})); then
			log "$PROG: missing:"
			printf '  - %s\n' "${missing[@]}" >&2
			if is_root; then die "install them first: $SELF install"; fi
			die "run as root to install them: sudo $SELF install"
		fi
	fi
	for s in "$@"; do
		if [[ $s == prefect ]] && ! find_prefect; then
			[[ $mode == up ]] && die "$(prefect_missing)"
			log "note: $(prefect_missing)"
		fi
	done
	return 0
}

make_dirs() {
	mkdir -p -- "$SVC_DIR" "$RUN_DIR" "$LOG_DIR" "$REDIS_DIR" "$PG_DIR" "$PREFECT_DIR"
}

# ---------------------------------------------------------------- redis

REDIS_PIDFILE=$RUN_DIR/redis.pid
REDIS_LOG=$LOG_DIR/redis.log

redis_pid() { pidfile_pid "$REDIS_PIDFILE" redis-server; }

redis_answers() {
	[[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

redis_ready() {
	local written=''
	if ! redis_pid >/dev/null; then
		# a pid in its pidfile that is not alive: it died. An empty pidfile is one being
		# written (seen on a loaded machine): wait.
		if [[ -r $REDIS_PIDFILE ]]; then read -r written <"$REDIS_PIDFILE" || true; fi
		[[ -n $written ]] && return 2
		return 1
	fi
	redis_answers
}

redis_start() {
	local pid
	if pid=$(redis_pid); then
		wait_until "$REDIS_START_TIMEOUT" redis_ready || {
			log_tail "$REDIS_LOG"
			die "redis (pid $pid) does not answer on $HOST:$REDIS_PORT"
		}
		echo "redis: already running on $HOST:$REDIS_PORT (pid $pid)"
		return 0
	fi
	port_open "$REDIS_PORT" && die "redis: port $HOST:$REDIS_PORT is in use by another process (set SLUICE_REDIS_PORT)"
	rm -f -- "$REDIS_PIDFILE"
	log_marker redis "$REDIS_LOG"
	# No persistence: this is a cache and lock server for development and tests.
	if ! redis-server --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
		--dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_PIDFILE" \
		--logfile "$REDIS_LOG" --save '' --appendonly no 8>&- 9>&- >&2; then
		log_tail "$REDIS_LOG"
		die "redis-server failed to start"
	fi
	if ! wait_until "$REDIS_START_TIMEOUT" redis_ready; then
		log_tail "$REDIS_LOG"
		die "redis did not come up on $HOST:$REDIS_PORT within ${REDIS_START_TIMEOUT}s"
	fi
	echo "redis: up on $HOST:$REDIS_PORT (pid $(redis_pid))"
}

redis_stop() { stop_by_pidfile redis "$REDIS_PIDFILE" redis-server TERM; }

redis_status() {
	local pid
	if ! pid=$(redis_pid); then
		echo "redis: stopped"
		return 3
	fi
	if redis_answers; then
		echo "redis: running on $HOST:$REDIS_PORT (pid $pid)"
	else
		echo "redis: not answering on $HOST:$REDIS_PORT (pid $pid)"
		return 3
	fi
}

# ---------------------------------------------------------------- postgres

PG_PIDFILE=$PG_DATA/postmaster.pid
PG_LOG=$LOG_DIR/postgres.log

pg_pid() { pidfile_pid "$PG_PIDFILE" postgres; }

pg_answers() { "$PG_BIN/pg_isready" -q -h "$RUN_DIR" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres >/dev/null 2>&1 || return 1; }

psql_super() {
	PGOPTIONS='-c client_min_messages=warning' \
		"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN_DIR" -p "$PG_PORT" -U "$PG_SUPERUSER" "$@"
}

pg_prepare_dirs() {
	local sock=$RUN_DIR/.s.PGSQL.$PG_PORT
	((${#sock} <= 107)) || die "postgres: socket path $sock is too long (max 107): set a shorter SLUICE_HOME"
	if is_root; then
		id -u "$PG_OS_USER" >/dev/null 2>&1 || die "postgres: system user '$PG_OS_USER' is missing (is postgresql-$PG_MAJOR installed?)"
		# The server runs as $PG_OS_USER: it needs to reach pg/ and write the socket and its log.
		chown "$PG_OS_USER:" "$RUN_DIR"
		touch -- "$PG_LOG"
		chown "$PG_OS_USER:" "$PG_LOG"
		runuser -u "$PG_OS_USER" -- test -x "$PG_DIR" -a -w "$RUN_DIR" ||
			die "postgres: user '$PG_OS_USER' cannot reach $PG_DIR or write $RUN_DIR: make the folders above it traversable (chmod o+x) or set SLUICE_HOME"
		if [[ ! -d $PG_DATA ]]; then
			install -d -o "$PG_OS_USER" -g "$PG_OS_USER" -m 700 -- "$PG_DATA"
		fi
	else
		[[ -d $PG_DATA ]] || mkdir -m 700 -- "$PG_DATA"
	fi
}

pg_initdb() {
	[[ -f $PG_DATA/PG_VERSION ]] && return 0
	log "postgres: initdb $PG_DATA"
	pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 >>"$PG_LOG" 2>&1 || {
		log_tail "$PG_LOG"
		die "postgres: initdb failed"
	}
}

# (Re)write the cluster's Sluice settings and pg_hba.conf; applied at each start.
pg_configure() {
	pg_as_owner tee "$PG_DATA/sluice.conf" >/dev/null <<EOF
# Written by sluice's services.sh on every start: edit the script, not this file.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$RUN_DIR'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
EOF
	# Development-only cluster: it listens on loopback and a private socket folder
	# only, so every local connection is trusted without a password.
	pg_as_owner tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by sluice's services.sh. DEVELOPMENT ONLY: trust authentication, which is
# acceptable solely because the server listens on 127.0.0.1 and a private socket.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
host    all          all   ::1/128        trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
host    replication  all   ::1/128        trust
EOF
	if ! grep -qx "include 'sluice.conf'" "$PG_DATA/postgresql.conf"; then
		printf '\n# Sluice development settings\ninclude %s\n' "'sluice.conf'" |
			pg_as_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null
	fi
}

# Role, database and extension; idempotent.
pg_bootstrap_db() {
	psql_super -d postgres <<SQL || return 1
SELECT 'CREATE ROLE $PG_APP_USER LOGIN NOSUPERUSER'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_APP_USER') \gexec
SELECT 'CREATE DATABASE $PG_APP_DB OWNER $PG_APP_USER'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_APP_DB') \gexec
SQL
	psql_super -d "$PG_APP_DB" -c 'CREATE EXTENSION IF NOT EXISTS timescaledb'
}

pg_start() {
	local pid
	if pid=$(pg_pid); then
		wait_until "$PG_START_TIMEOUT" pg_answers || {
			log_tail "$PG_LOG"
			die "postgres (pid $pid) does not answer on $HOST:$PG_PORT"
		}
		echo "postgres: already running on $HOST:$PG_PORT (pid $pid)"
		return 0
	fi
	port_open "$PG_PORT" && die "postgres: port $HOST:$PG_PORT is in use by another process (set SLUICE_PG_PORT)"
	pg_prepare_dirs
	log_marker postgres "$PG_LOG"
	pg_initdb
	pg_configure
	# A postmaster.pid whose process is gone (or is not postgres) is stale.
	[[ -e $PG_PIDFILE ]] && rm -f -- "$PG_PIDFILE"
	if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" -s start 8>&- 9>&- >&2; then
		log_tail "$PG_LOG"
		die "postgres failed to start"
	fi
	if ! pid=$(pg_pid) || ! pg_answers; then
		log_tail "$PG_LOG"
		die "postgres started but does not answer on $HOST:$PG_PORT"
	fi
	pg_bootstrap_db || {
		log_tail "$PG_LOG"
		die "postgres: creating role/database $PG_APP_DB or the timescaledb extension failed"
	}
	echo "postgres: up on $HOST:$PG_PORT (pid $pid)"
}

# SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients instead of waiting for them.
pg_stop() { stop_by_pidfile postgres "$PG_PIDFILE" postgres INT; }

pg_status() {
	local pid
	if [[ -d $PG_DATA && ! -x $PG_DATA ]]; then
		echo "postgres: unknown (cannot read $PG_DATA; ask as root or $PG_OS_USER)"
		return 3
	fi
	if ! pid=$(pg_pid); then
		echo "postgres: stopped"
		return 3
	fi
	if pg_answers; then
		echo "postgres: running on $HOST:$PG_PORT (pid $pid)"
	else
		echo "postgres: not answering on $HOST:$PG_PORT (pid $pid)"
		return 3
	fi
}

# ---------------------------------------------------------------- prefect

PREFECT_PIDFILE=$RUN_DIR/prefect.pid
PREFECT_LOG=$LOG_DIR/prefect.log
PREFECT_COMM=prefect # the process name of the `prefect` console script (a Python script)

# Set PREFECT_BIN to the `prefect` of the environment sluice runs in: beside SLUICE_PYTHON (a
# virtualenv's bin/), in that interpreter's scripts folder (a --user install), else on PATH.
find_prefect() {
	local dir
	[[ -n $PREFECT_BIN ]] && return 0
	if [[ -n ${SLUICE_PYTHON:-} ]]; then
		for dir in "$(dirname -- "$SLUICE_PYTHON")" \
			"$("$SLUICE_PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)"; do
			if [[ -n $dir && -x $dir/prefect ]]; then
				PREFECT_BIN=$dir/prefect
				return 0
			fi
		done
	fi
	PREFECT_BIN=$(command -v prefect) || PREFECT_BIN=''
	[[ -n $PREFECT_BIN ]]
}

prefect_missing() {
	printf '%s' "no prefect executable beside ${SLUICE_PYTHON:-(SLUICE_PYTHON unset)} or on PATH: " \
		"install sluice (it depends on prefect) into the environment you run sluice from"
}

# The server's own address: its UI (served by the same process) must call this API, whatever
# PREFECT_API_URL the caller's shell holds (Prefect's UI default is PREFECT_API_URL, else
# http://PREFECT_SERVER_API_HOST:PREFECT_SERVER_API_PORT/api, which `--port` does not change).
prefect_url() { printf 'http://%s:%s\n' "$HOST" "$PREFECT_PORT"; }

prefect_pid() { pidfile_pid "$PREFECT_PIDFILE" "$PREFECT_COMM"; }

prefect_answers() {
	curl -sf --max-time 3 -o /dev/null "http://$HOST:$PREFECT_PORT/api/health" || return 1
}

prefect_ready() {
	local pid=''
	[[ -r $PREFECT_PIDFILE ]] || return 1 # the launcher has not written it yet
	read -r pid <"$PREFECT_PIDFILE" || true
	pid_alive "$pid" || return 2             # the server died
	pid_alive "$pid" "$PREFECT_COMM" || return 1 # still the launcher shell, about to exec
	prefect_answers
}

prefect_start() {
	local pid
	find_prefect || die "$(prefect_missing)"
	if pid=$(prefect_pid); then
		wait_until "$PREFECT_START_TIMEOUT" prefect_ready || {
			log_tail "$PREFECT_LOG"
			die "prefect (pid $pid) does not answer on $HOST:$PREFECT_PORT"
		}
		echo "prefect: already running on $HOST:$PREFECT_PORT (pid $pid); UI $(prefect_url)"
		return 0
	fi
	port_open "$PREFECT_PORT" && die "prefect: port $HOST:$PREFECT_PORT is in use by another process (set SLUICE_PREFECT_PORT)"
	rm -f -- "$PREFECT_PIDFILE"
	local db_url="" redis_url=""
	# Both profiles: the task-run recorder writes task-run states in batches (default: one
	# transaction per event, 12 % of the server's CPU under serve; states reach the UI up to 1 s
	# later). docs/decisions.md has the figures.
	local -a settings=(
		PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE=50
		PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE=50
		PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL=1
	)
	if [[ $PROFILE == production ]]; then
		prefect_production_checks
		db_url="postgresql+asyncpg://$PG_APP_USER@$HOST:$PG_PORT/$PREFECT_DB"
		redis_url="redis://$HOST:$REDIS_PORT"
		settings+=(
			PREFECT_MESSAGING_BROKER=prefect_redis.messaging
			PREFECT_MESSAGING_CACHE=prefect_redis.messaging
			PREFECT_SERVER_EVENTS_CAUSAL_ORDERING=prefect_redis.ordering
			PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect_redis.lease_storage
			"PREFECT_REDIS_MESSAGING_URL=$redis_url/$PREFECT_REDIS_DB"
			"PREFECT_SERVER_DOCKET_URL=$redis_url/$PREFECT_DOCKET_DB"
		)
		log "prefect: production profile: PostgreSQL $HOST:$PG_PORT/$PREFECT_DB, Redis messaging $redis_url/$PREFECT_REDIS_DB"
	# The server's own database: PostgreSQL (database "prefect" in our cluster) when it runs,
	# as in production; SQLite answers "database is locked" under concurrent runs.
	elif pg_answers && psql_super -d postgres <<SQL; then
SELECT 'CREATE DATABASE prefect OWNER $PG_APP_USER'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'prefect') \gexec
SQL
		db_url="postgresql+asyncpg://$PG_APP_USER@$HOST:$PG_PORT/prefect"
		log "prefect: database PostgreSQL $HOST:$PG_PORT/prefect"
	else
		log "prefect: database SQLite in $PREFECT_DIR (postgres is not running)"
	fi
	local -a split=()
	if [[ $PROFILE == production ]] && ((PREFECT_API_WORKERS > 1)); then
		split=(--workers "$PREFECT_API_WORKERS" --no-services)
		PREFECT_START_TIMEOUT=$((PREFECT_START_TIMEOUT * 2)) # each API process imports Prefect
		printf '%s\n' "$PROFILE: $PREFECT_API_WORKERS API processes, services apart" >"$RUN_DIR/prefect.profile"
	else
		printf '%s\n' "$PROFILE" >"$RUN_DIR/prefect.profile"
	fi
	log_marker prefect "$PREFECT_LOG"
	# setsid: its own session and process group (pgid = pid), so it survives this shell
	# and "down" can signal the server together with any child it spawned. The inner
	# shell writes its own pid, then becomes the server (exec keeps the pid).
	(
		cd -- "$PREFECT_DIR"
		export PREFECT_HOME=$PREFECT_DIR PREFECT_SERVER_ANALYTICS_ENABLED=false
		unset PREFECT_API_URL PREFECT_UI_API_URL PREFECT_UI_URL
		export PREFECT_SERVER_API_HOST=$HOST PREFECT_SERVER_API_PORT=$PREFECT_PORT \
			PREFECT_SERVER_UI_API_URL=$(prefect_url)/api PREFECT_UI_URL=$(prefect_url)
		if [[ -n $db_url ]]; then
			export PREFECT_API_DATABASE_CONNECTION_URL=$db_url
			# 10 pooled connections (default 5): past the pool, each request's connection was a
			# new backend that quit after it (~15 ms of PostgreSQL CPU each, ~0.05 s per file)
			export PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE=10
		fi
		if ((${#settings[@]})); then export "${settings[@]}"; fi
		if ((${#split[@]})); then
			# Once, before several processes start on the database: its migrations and the
			# block types (each API process would register them at start, racing the others).
			"$PREFECT_BIN" server database upgrade -y >>"$PREFECT_LOG" 2>&1 ||
				die "prefect: migrating database $PREFECT_DB failed (see $PREFECT_LOG)"
			"$(dirname -- "$PREFECT_BIN")/python" -c "$PREFECT_REGISTER_BLOCKS" >>"$PREFECT_LOG" 2>&1 ||
				die "prefect: registering block types in $PREFECT_DB failed (see $PREFECT_LOG)"
			export PREFECT_API_DATABASE_MIGRATE_ON_START=false PREFECT_SERVER_REGISTER_BLOCKS_ON_START=false
		fi
		# The inner shell writes its own pid, starts the services process when the API runs
		# without them (a child of the same group: `down` stops both), then becomes the API.
		# shellcheck disable=SC2016 # $$, $1, $2 belong to the inner shell
		setsid nohup bash -c 'echo "$$" >"$1"; if [[ $2 == split ]]; then "$3" server services start & fi; shift 2; exec "$@"' \
			sluice-prefect "$PREFECT_PIDFILE" "${split:+split}" "$PREFECT_BIN" server start \
			--host "$HOST" --port "$PREFECT_PORT" "${split[@]}" \
			</dev/null >>"$PREFECT_LOG" 2>&1 8>&- 9>&- &
	)
	if ! wait_until "$PREFECT_START_TIMEOUT" prefect_ready; then
		log_tail "$PREFECT_LOG"
		if pid=$(prefect_pid); then
			die "prefect (pid $pid) did not answer on $HOST:$PREFECT_PORT within ${PREFECT_START_TIMEOUT}s; stop it with: $SELF down prefect"
		fi
		rm -f -- "$PREFECT_PIDFILE"
		die "prefect server failed to start"
	fi
	echo "prefect: up on $HOST:$PREFECT_PORT (pid $(prefect_pid)); UI $(prefect_url)"
}

# The production profile's prerequisites: Redis and PostgreSQL answer on loopback (over TCP:
# they may be another SLUICE_HOME's), and the server's own database exists.
prefect_production_checks() {
	redis_answers || die "prefect: the production profile needs Redis on $HOST:$REDIS_PORT (start it: $PROG up redis)"
	"$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" >/dev/null 2>&1 ||
		die "prefect: the production profile needs PostgreSQL on $HOST:$PG_PORT (start it: $PROG up postgres)"
	[[ $PREFECT_DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "SLUICE_PREFECT_DB must be a plain identifier, got '$PREFECT_DB'"
	PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
		-h "$HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres >/dev/null <<SQL ||
SELECT 'CREATE DATABASE $PREFECT_DB OWNER $PG_APP_USER'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PREFECT_DB') \gexec
SQL
		die "prefect: could not create database $PREFECT_DB on $HOST:$PG_PORT"
}

prefect_stop() {
	local pid=''
	[[ -r $PREFECT_PIDFILE ]] && read -r pid <"$PREFECT_PIDFILE"
	stop_by_pidfile prefect "$PREFECT_PIDFILE" "$PREFECT_COMM" TERM group
	# the API gone first (it died), its group may still hold the services process it started
	if [[ $pid =~ ^[0-9]+$ ]] && kill -0 -- "-$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || true
		echo "prefect: stopped the rest of its process group ($pid)"
	fi
}

prefect_status() {
	local pid
	if ! pid=$(prefect_pid); then
		echo "prefect: stopped"
		return 3
	fi
	if prefect_answers; then
		echo "prefect: running on $HOST:$PREFECT_PORT (pid $pid, profile $(cat "$RUN_DIR/prefect.profile" 2>/dev/null || echo local)); UI $(prefect_url)"
	else
		echo "prefect: not answering on $HOST:$PREFECT_PORT (pid $pid)"
		return 3
	fi
}

# ---------------------------------------------------------------- stopping

# stop_by_pidfile NAME PIDFILE COMM SIGNAL [group]: signal the pid in PIDFILE (its whole
# process group with "group", when it leads one), wait up to $STOP_TIMEOUT s, remove PIDFILE.
stop_by_pidfile() {
	local name=$1 pidfile=$2 comm=$3 sig=$4 group=${5:-} pid target deadline
	if ! pid=$(pidfile_pid "$pidfile" "$comm"); then
		if [[ -e $pidfile ]]; then
			rm -f -- "$pidfile"
			echo "$name: not running (removed stale $pidfile)"
		else
			echo "$name: not running"
		fi
		return 0
	fi
	target=$pid
	if [[ -n $group && $(ps -o pgid= -p "$pid" | tr -d ' ') == "$pid" ]]; then
		target=-$pid
	fi
	kill "-$sig" -- "$target" 2>/dev/null || true
	deadline=$((SECONDS + STOP_TIMEOUT))
	while pid_alive "$pid" "$comm" || { [[ $target == -* ]] && kill -0 -- "$target" 2>/dev/null; }; do
		if ((SECONDS >= deadline)); then
			log "$name: pid $pid still running ${STOP_TIMEOUT}s after SIG$sig; pidfile $pidfile kept"
			echo "$name: still running (pid $pid)"
			return 1
		fi
		sleep 0.25
	done
	rm -f -- "$pidfile"
	echo "$name: stopped (pid $pid)"
}

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

main "$@"
