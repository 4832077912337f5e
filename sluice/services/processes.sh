# shellcheck shell=bash
# Sourced by services.sh: the services' processes (Redis, PostgreSQL, the Prefect server): start,
# wait until they answer, report, and stop them by the pids in their own pidfiles.
# shellcheck disable=SC2153 # the paths (SVC_DIR, PREFECT_DIR, ...) are services.sh's

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
	[[ -n $pid ]] || return 1                # being written (an empty file was read under load)
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
	local db_url=""
	local -a settings=() split=()
	prefect_profile # db_url, settings and split for $PROFILE (profiles.sh)
	log_marker prefect "$PREFECT_LOG"
	# setsid: its own session and process group (pgid = pid), so it survives this shell
	# and "down" can signal the server together with any child it spawned. The inner
	# shell writes its own pid, then becomes the server (exec keeps the pid).
	(
		cd -- "$PREFECT_DIR" || exit
		export PREFECT_HOME=$PREFECT_DIR PREFECT_SERVER_ANALYTICS_ENABLED=false
		unset PREFECT_API_URL PREFECT_UI_API_URL PREFECT_UI_URL
		ui=$(prefect_url)
		export PREFECT_SERVER_API_HOST=$HOST PREFECT_SERVER_API_PORT=$PREFECT_PORT \
			PREFECT_SERVER_UI_API_URL=$ui/api PREFECT_UI_URL=$ui
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
		# The inner shell writes its own pid (whole, by a rename: a reader never finds the file
		# empty), starts the services process when the API runs without them (a child of the
		# same group: `down` stops both), then becomes the API.
		# shellcheck disable=SC2016 # $$, $1, $2 belong to the inner shell
		setsid nohup bash -c 'echo "$$" >"$1.new" && mv -f -- "$1.new" "$1"; if [[ $2 == split ]]; then "$3" server services start & fi; shift 2; exec "$@"' \
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
