# shellcheck shell=bash
# Sourced by services.sh: the Prefect server's profiles (SLUICE_PROFILE), what each sets.
#
#   local       on PostgreSQL database "prefect" of this cluster when it runs, else SQLite;
#               in-memory messaging: one server process, as `prefect server start` is.
#   production  on PostgreSQL with prefect-redis as messaging broker and cache, causal
#               ordering, concurrency lease storage and Docket; with SLUICE_PREFECT_API_WORKERS=N
#               the API in N processes beside one process of the background services.

# prefect_profile: for $PROFILE, set prefect_start's db_url (the server's database; empty:
# SQLite), settings (PREFECT_*=... the server is started with) and split (the arguments of an
# API in several processes), and record the profile in $RUN_DIR/prefect.profile.
# shellcheck disable=SC2034 # db_url, settings, split: prefect_start's locals
prefect_profile() {
	local redis_url=""
	# Both profiles: the task-run recorder writes task-run states in batches (default: one
	# transaction per event, 12 % of the server's CPU under serve; states reach the UI up to 1 s
	# later). docs/decisions.md has the figures.
	settings=(
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
	if [[ $PROFILE == production ]] && ((PREFECT_API_WORKERS > 1)); then
		split=(--workers "$PREFECT_API_WORKERS" --no-services)
		PREFECT_START_TIMEOUT=$((PREFECT_START_TIMEOUT * 2)) # each API process imports Prefect
		printf '%s\n' "$PROFILE: $PREFECT_API_WORKERS API processes, services apart" >"$RUN_DIR/prefect.profile"
	else
		printf '%s\n' "$PROFILE" >"$RUN_DIR/prefect.profile"
	fi
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
