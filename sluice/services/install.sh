# shellcheck shell=bash
# Sourced by services.sh: installing what the services need (Debian packages, TimescaleDB built
# from Debian's source package and cached), or, without root, saying what is missing.

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
