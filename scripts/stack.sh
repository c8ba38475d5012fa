# shellcheck shell=bash
# Functions shared by up.sh, down.sh and test.sh: installing what is missing, and
# starting/stopping RabbitMQ and PostgreSQL with their data in a project-local folder.
# Source it; it defines functions and sets nothing else.

ESTEIRA_ROOT="${ESTEIRA_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
RABBIT_BIN="${RABBIT_BIN:-/usr/lib/rabbitmq/bin}"

say()  { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# as_root CMD...: runs CMD as root (directly, or through sudo), or fails saying what to run.
as_root() {
  if is_root; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (install sudo, or run it as root once)"
  fi
}

# install_debs PACKAGE...: installs with apt-get those of the Debian packages that are missing.
install_debs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get: install them by hand"
    say "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  fi
}

# python_venv DIR PACKAGE==VERSION...: a virtualenv at DIR with exactly these pinned packages
# from PyPI (Debian's python3 and python3-venv installed when missing); kept while the list is
# the same, made again when it changes.
python_venv() {
  local venv=$1 python=/usr/bin/python3
  shift
  [ "$(cat "$venv/.esteira-packages" 2>/dev/null || true)" = "$*" ] && return 0
  say "installing $* into ${venv#"$ESTEIRA_ROOT"/}"
  command -v dpkg-query >/dev/null 2>&1 && install_debs python3 python3-venv
  [ -x "$python" ] || python=$(command -v python3 || true)
  [ -n "$python" ] || die "python3 not found"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" || die "$python -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" || die "pip install $* failed"
  echo "$*" >"$venv/.esteira-packages"
}

# ensure_packages: installs with apt-get the Debian packages the stack needs, when missing.
ensure_packages() {
  install_debs rabbitmq-server librabbitmq-dev amqp-tools postgresql libpq-dev libcurl4-openssl-dev \
               pkg-config curl openssl python3 ca-certificates
  [ -x "$PG_BIN/postgres" ] || PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$PG_BIN/postgres" ] || die "PostgreSQL binaries not found under /usr/lib/postgresql"
  [ -x "$RABBIT_BIN/rabbitmq-server" ] || die "RabbitMQ scripts not found in $RABBIT_BIN"
  command -v swift >/dev/null 2>&1 || [ -x /opt/swift/usr/bin/swift ] \
    || die "swift not found: install a Swift 6 toolchain (https://www.swift.org/install/linux/) and put it on PATH"
  command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
}

# port_in_use PORT: true when something on 127.0.0.1 accepts connections on PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_holder PORT: "python3 (pid 123)" when `ss` can see who listens on PORT (it sees other
# users' processes only as root), else nothing.
port_holder() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -Eo 'users:\(\("[^"]+",pid=[0-9]+' | head -1 \
    | sed -E 's/users:\(\("([^"]+)",pid=([0-9]+)/\1 (pid \2)/'
}

# require_free_ports WHAT|PORT|VARIABLE[|OFFSET[|STEP]]...: fails when any PORT is taken, with
# one line per taken port naming it, what it is for, who holds it when that can be seen, and
# the variable that moves it (OFFSET: the port is VARIABLE + OFFSET), then a command line with
# free ports instead (keeping the variables already set; STEP: how far past PORT to look).
require_free_ports() {
  local lines=() vars=() entry what port var offset step holder
  declare -A value=()
  for entry in "$@"; do
    IFS='|' read -r what port var offset step <<<"$entry"
    [ -n "${value[$var]+set}" ] || { vars+=("$var"); value[$var]="${!var:-}"; }
    port_in_use "$port" || continue
    holder=$(port_holder "$port")
    lines+=("$(printf '  %-5s %-22s %-30s set %s' "$port" "$what" "${holder:+held by $holder}" "$var")")
    value[$var]=$(( $(free_port $((port + ${step:-1}))) - ${offset:-0} ))
  done
  [ ${#lines[@]} -eq 0 ] && return 0
  local retry=""
  for var in "${vars[@]}"; do [ -n "${value[$var]}" ] && retry+="$var=${value[$var]} "; done
  {
    printf '\033[1;31merror:\033[0m %d port(s) the stack needs already in use on 127.0.0.1:\n' "${#lines[@]}"
    printf '%s\n' "${lines[@]}"
    printf 'Stop what holds them, or choose free ports (README, "What make up starts"), e.g.:\n'
    printf '  %smake up\n' "$retry"
  } >&2
  exit 1
}

# free_port START: prints the first port >= START that nothing listens on or uses.
free_port() {
  local p=$1
  while port_in_use "$p" || port_has_sockets "$p"; do p=$((p + 1)); done
  echo "$p"
}

# port_has_sockets PORT: some TCP socket of this machine uses PORT locally (an outgoing
# connection, or one in TIME-WAIT), which can make a server's bind fail though nothing listens.
port_has_sockets() {
  command -v ss >/dev/null 2>&1 || return 1
  [ -n "$(ss -Htan "sport = :$1" 2>/dev/null | head -1)" ]
}

# wait_for_port PORT SECONDS
wait_for_port() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do port_in_use "$1" && return 0; sleep 0.1; done
  return 1
}

# ---- PostgreSQL ---------------------------------------------------------------------------

# pg_user_run CMD...: PostgreSQL refuses to run as root, so as root its tools run as `postgres`.
pg_user_run() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_data_dir STACKDIR: where the cluster lives. As root the `postgres` user must reach it; a
# project inside a folder it cannot enter (mktemp -d makes 0700 folders) gets its cluster in
# a private folder under /var/tmp, linked from STACKDIR/pg.
pg_data_dir() {
  local stack=$1
  if [ -L "$stack/pg" ]; then readlink "$stack/pg"; return; fi
  if is_root && ! runuser -u postgres -- test -x "$stack"; then
    local alt="/var/tmp/esteira-pg-$(printf '%s' "$stack" | md5sum | cut -c1-12)"
    mkdir -p "$alt" && chown postgres: "$alt" && chmod 700 "$alt"
    ln -sfn "$alt" "$stack/pg"
    echo "$alt"
  else
    echo "$stack/pg"
  fi
}

# pg_start STACKDIR PORT: initialises (first time) and starts a cluster on 127.0.0.1:PORT with
# a trusted `esteira` superuser and an `esteira` database.
pg_start() {
  local stack=$1 port=$2 data
  data=$(pg_data_dir "$stack")
  mkdir -p "$data"
  is_root && chown postgres: "$data"
  if [ ! -f "$data/data/PG_VERSION" ]; then
    say "initialising PostgreSQL in $data/data"
    pg_user_run "$PG_BIN/initdb" -D "$data/data" -U esteira --auth=trust -E UTF8 >"$data/initdb.log" 2>&1 \
      || { cat "$data/initdb.log" >&2; die "initdb failed"; }
  fi
  # PG_TRUST_NET (a CIDR): clients from there are trusted too (tests' network namespaces).
  # PG_OPTIONS: more server options (e.g. -c shared_preload_libraries=pg_stat_statements).
  if [ -n "${PG_TRUST_NET:-}" ] && ! grep -q "^host all all $PG_TRUST_NET trust" "$data/data/pg_hba.conf"; then
    echo "host all all $PG_TRUST_NET trust" >>"$data/data/pg_hba.conf"
  fi
  mkdir -p "$data/run"
  is_root && chown postgres: "$data/run"
  if pg_user_run "$PG_BIN/pg_ctl" -D "$data/data" status >/dev/null 2>&1; then
    say "PostgreSQL already running ($data/data)"
  else
    say "starting PostgreSQL on 127.0.0.1:$port"
    pg_user_run "$PG_BIN/pg_ctl" -D "$data/data" -l "$data/postgres.log" -w -t 60 \
      -o "-p $port -k $data/run -c listen_addresses=127.0.0.1${PG_LISTEN_EXTRA:+,$PG_LISTEN_EXTRA} -c max_connections=200 ${PG_OPTIONS:-}" start >/dev/null \
      || { tail -20 "$data/postgres.log" >&2; die "PostgreSQL did not start (log: $data/postgres.log)"; }
  fi
  local i
  for ((i = 0; i < 50; i++)); do
    psql -h 127.0.0.1 -p "$port" -U esteira -d postgres -Atqc "select 1" >/dev/null 2>&1 && break
    sleep 0.2
  done
  psql -h 127.0.0.1 -p "$port" -U esteira -d postgres -Atqc "select 1 from pg_database where datname='esteira'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$port" -U esteira -d postgres -qc "create database esteira" >/dev/null \
    || die "could not create database esteira"
}

# pg_replica_start PRIMARY_PORT STACKDIR PORT: a streaming replica of the cluster on
# 127.0.0.1:PRIMARY_PORT (pg_basebackup -R the first time), started on PORT.
pg_replica_start() {
  local primary=$1 stack=$2 port=$3 data
  data=$(pg_data_dir "$stack")
  mkdir -p "$data/run"
  is_root && chown postgres: "$data" "$data/run"
  if [ ! -f "$data/data/PG_VERSION" ]; then
    pg_user_run "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$primary" -U esteira -D "$data/data" -R -X stream >"$data/basebackup.log" 2>&1 \
      || { cat "$data/basebackup.log" >&2; die "pg_basebackup from port $primary failed"; }
  fi
  pg_user_run "$PG_BIN/pg_ctl" -D "$data/data" -l "$data/postgres.log" -w -t 60 \
    -o "-p $port -k $data/run -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
    || { tail -20 "$data/postgres.log" >&2; die "the replica did not start (log: $data/postgres.log)"; }
}

# pg_promote STACKDIR: promotes a replica to primary and waits until it takes writes.
pg_promote() {
  local data; data=$(pg_data_dir "$1")
  pg_user_run "$PG_BIN/pg_ctl" -D "$data/data" -w -t 60 promote >/dev/null || die "pg_ctl promote failed"
}

# pg_stop STACKDIR
pg_stop() {
  local stack=$1 data
  [ -e "$stack/pg" ] || return 0
  data=$(pg_data_dir "$stack")
  if [ -f "$data/data/postmaster.pid" ]; then
    say "stopping PostgreSQL"
    pg_user_run "$PG_BIN/pg_ctl" -D "$data/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

# pg_destroy STACKDIR: removes the cluster (used by test runs, which start from nothing).
pg_destroy() {
  local stack=$1 data
  [ -e "$stack/pg" ] || return 0
  data=$(pg_data_dir "$stack")
  rm -rf "$data"
  rm -f "$stack/pg"
}

# scratch_servers_stop DIR: stops every PostgreSQL and RabbitMQ node whose data is under DIR
# (tests start some of their own there; a test process that crashed leaves them running),
# removes their data, then DIR.
scratch_servers_stop() {
  local dir=$1 link pidfile pid
  [ -d "$dir" ] || return 0
  # Each STACKDIR/pg of a cluster started there (pg_destroy also removes one kept outside DIR).
  while IFS= read -r link; do
    pg_stop "$(dirname "$link")" || true
    pg_destroy "$(dirname "$link")"
  done < <(find "$dir" -maxdepth 4 -name pg \( -type l -o -type d \) 2>/dev/null)
  while IFS= read -r pidfile; do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      say "stopping a test's RabbitMQ node (pid $pid)"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done < <(find "$dir" -name rabbit.pid 2>/dev/null)
  rm -rf "$dir"
}

# ---- RabbitMQ -----------------------------------------------------------------------------

# rabbit_env STACKDIR NODE AMQP MGMT PROM DIST: the variables that place a node's files and ports.
# The CLI tools (rabbitmqctl) listen on ports of their own, by default 35672-35682 whatever
# the node's ports; they are pinned next to the node's distribution port so that they never
# take the AMQP port of another stack on the same machine.
rabbit_env() {
  local r="$1/rabbitmq"
  echo "HOME=$r" "RABBITMQ_HOME=/usr/lib/rabbitmq" \
    "RABBITMQ_MNESIA_BASE=$r/mnesia" "RABBITMQ_LOG_BASE=$r/log" \
    "RABBITMQ_PID_FILE=$r/rabbit.pid" "RABBITMQ_NODENAME=$2" \
    "RABBITMQ_DIST_PORT=$6" "RABBITMQ_CTL_DIST_PORT_MIN=$(($6 + 1))" "RABBITMQ_CTL_DIST_PORT_MAX=$(($6 + 10))" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$r/enabled_plugins" "RABBITMQ_CONFIG_FILE=$r/rabbitmq" \
    "RABBITMQ_ADVANCED_CONFIG_FILE=$r/advanced.config" "RABBITMQ_CONF_ENV_FILE=$r/rabbitmq-env.conf"
}

# rabbit_boot_error RABBITDIR: the lines of a failed boot that say why (the log is long).
rabbit_boot_error() {
  local log; log=$(ls "$1"/log/*@*.log 2>/dev/null | grep -v _upgrade | head -1)
  [ -n "$log" ] || { cat "$1/start.log" 2>/dev/null; return 0; }
  if grep -q eaddrinuse "$log"; then
    echo "a port RabbitMQ needs is already in use:"
    grep -Eo '\{could_not_start_listener,[^}]*' "$log" | sort -u
  else
    grep -A12 'BOOT FAILED' "$log" | head -24 || tail -20 "$log"
  fi
}

# rabbit_start STACKDIR NODE AMQP MGMT PROM DIST
rabbit_start() {
  local stack=$1 node=$2 amqp=$3 mgmt=$4 prom=$5 dist=$6
  local r="$stack/rabbitmq"
  mkdir -p "$r/mnesia" "$r/log"
  echo "[rabbitmq_management,rabbitmq_prometheus]." >"$r/enabled_plugins"
  : >"$r/rabbitmq-env.conf"
  : >"$r/advanced.config"; echo "[]." >"$r/advanced.config"
  cat >"$r/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$amqp
${RABBIT_LISTEN_EXTRA:+listeners.tcp.extra = $RABBIT_LISTEN_EXTRA:$amqp}
management.tcp.port = $mgmt
management.tcp.ip = 127.0.0.1
prometheus.tcp.port = $prom
prometheus.tcp.ip = 127.0.0.1
loopback_users.guest = $([ -n "${RABBIT_LISTEN_EXTRA:-}" ] && echo false || echo true)
vm_memory_high_watermark.relative = 0.4
disk_free_limit.absolute = 200MB
EOF
  # shellcheck disable=SC2046
  if env $(rabbit_env "$@") "$RABBIT_BIN/rabbitmqctl" -n "$node" status >/dev/null 2>&1; then
    say "RabbitMQ already running ($node)"
    return 0
  fi
  say "starting RabbitMQ on 127.0.0.1:$amqp (management on $mgmt)"
  # shellcheck disable=SC2046
  env $(rabbit_env "$@") "$RABBIT_BIN/rabbitmq-server" -detached >"$r/start.log" 2>&1
  # shellcheck disable=SC2046
  env $(rabbit_env "$@") "$RABBIT_BIN/rabbitmqctl" -n "$node" wait "$r/rabbit.pid" --timeout 90 >"$r/wait.log" 2>&1 \
    || { rabbit_boot_error "$r" >&2; die "RabbitMQ did not start (logs: $r/log)"; }
  wait_for_port "$mgmt" 30 || warn "RabbitMQ management UI did not answer on $mgmt"
}

# rabbit_stop STACKDIR NODE
rabbit_stop() {
  local stack=$1 node=$2 r="$1/rabbitmq"
  [ -d "$r" ] || return 0
  if [ -f "$r/rabbit.pid" ] && kill -0 "$(cat "$r/rabbit.pid")" 2>/dev/null; then
    say "stopping RabbitMQ ($node)"
    env HOME="$r" "$RABBIT_BIN/rabbitmqctl" -n "$node" stop "$r/rabbit.pid" >/dev/null 2>&1 \
      || kill "$(cat "$r/rabbit.pid")" 2>/dev/null || true
  fi
  rm -f "$r/rabbit.pid"
  # epmd is started by the first Erlang node and outlives it; stop it when no node is left.
  if command -v epmd >/dev/null 2>&1 || [ -x /usr/lib/erlang/bin/epmd ]; then
    local epmd; epmd=$(command -v epmd || echo /usr/lib/erlang/bin/epmd)
    if ! "$epmd" -names 2>/dev/null | grep -q "^name "; then "$epmd" -kill >/dev/null 2>&1 || true; fi
  fi
}

# ---- Hosts of their own: network namespaces on a bridge (tests) ---------------------------

# netns_hosts_up TAG OCTET COUNT: a bridge eb<TAG> holding 10.213.<OCTET>.1/24 on this machine,
# and COUNT network namespaces en<TAG>-<i>, each joined to it by a veth pair (eh<TAG><i> on the
# bridge, ep<TAG><i> inside, address 10.213.<OCTET>.<10+i>/24) with its own loopback up: hosts
# with their own address whose network a test can cut (netns_cut). Needs root (or sudo).
netns_hosts_up() {
  local tag=$1 octet=$2 n=$3 i
  command -v ip >/dev/null 2>&1 || install_debs iproute2
  as_root ip link add "eb$tag" type bridge
  as_root ip addr add "10.213.$octet.1/24" dev "eb$tag"
  as_root ip link set "eb$tag" up
  for ((i = 1; i <= n; i++)); do
    as_root ip netns add "en$tag-$i"
    as_root ip link add "eh$tag$i" type veth peer name "ep$tag$i"
    as_root ip link set "eh$tag$i" master "eb$tag"
    as_root ip link set "eh$tag$i" up
    as_root ip link set "ep$tag$i" netns "en$tag-$i"
    as_root ip -n "en$tag-$i" addr add "10.213.$octet.$((10 + i))/24" dev "ep$tag$i"
    as_root ip -n "en$tag-$i" link set "ep$tag$i" up
    as_root ip -n "en$tag-$i" link set lo up
  done
}

# netns_hosts_down TAG COUNT: removes them (the veth pairs go with their namespaces).
netns_hosts_down() {
  local tag=$1 n=$2 i
  for ((i = 1; i <= n; i++)); do as_root ip netns del "en$tag-$i" 2>/dev/null || true; done
  as_root ip link del "eb$tag" 2>/dev/null || true
}

# netns_cut TAG I / netns_restore TAG I: takes host I's link down (packets vanish, no reset,
# as when a host's network goes) and up again.
netns_cut() { as_root ip link set "eh$1$2" down; }
netns_restore() { as_root ip link set "eh$1$2" up; }

# ---- A RabbitMQ cluster of three nodes on this machine -------------------------------------

# rabbit_cluster_nodes STACKDIR PREFIX AMQP MGMT PROM DIST: one line per node, "DIR NODE AMQP
# MGMT PROM DIST": node i (1-3) under STACKDIR/cluster/node<i>, its ports the bases + i - 1
# (the distribution port + 20 × (i - 1), leaving each node's CLI tools their ten ports).
rabbit_cluster_nodes() {
  local i
  for i in 1 2 3; do
    echo "$1/cluster/node$i $(rabbit_node_name "$2-$i" "$1") $(($3 + i - 1)) $(($4 + i - 1)) $(($5 + i - 1)) $(($6 + 20 * (i - 1)))"
  done
}

# rabbit_cluster_start STACKDIR PREFIX AMQP MGMT PROM DIST: starts the three nodes with one
# Erlang cookie and joins nodes 2 and 3 to node 1 (`rabbitmqctl join_cluster`); a node that is
# a member already is left as it is, so it can be run again, or to bring back a stopped node.
# RABBIT_LISTEN_EXTRA (an address) makes every node listen there too, beside 127.0.0.1.
rabbit_cluster_start() {
  local dir node amqp mgmt prom dist first="" cookie="$1/cluster/.erlang.cookie"
  mkdir -p "$1/cluster"
  [ -s "$cookie" ] || { head -c 32 /dev/urandom | md5sum | cut -c1-20 >"$cookie"; chmod 400 "$cookie"; }
  # fd 3: rabbitmqctl reads standard input.
  while read -r -u 3 dir node amqp mgmt prom dist; do
    mkdir -p "$dir/rabbitmq"
    [ -e "$dir/rabbitmq/.erlang.cookie" ] || { cp "$cookie" "$dir/rabbitmq/.erlang.cookie"; chmod 400 "$dir/rabbitmq/.erlang.cookie"; }
    rabbit_start "$dir" "$node" "$amqp" "$mgmt" "$prom" "$dist"
    if [ -z "$first" ]; then first=$node; continue; fi
    # shellcheck disable=SC2046
    if env $(rabbit_env "$dir" "$node" "$amqp" "$mgmt" "$prom" "$dist") "$RABBIT_BIN/rabbitmqctl" -n "$node" cluster_status --formatter json 2>/dev/null \
        | grep -q "\"$first\""; then
      continue
    fi
    say "joining $node to $first"
    # shellcheck disable=SC2046
    { env $(rabbit_env "$dir" "$node" "$amqp" "$mgmt" "$prom" "$dist") "$RABBIT_BIN/rabbitmqctl" -n "$node" stop_app &&
      env $(rabbit_env "$dir" "$node" "$amqp" "$mgmt" "$prom" "$dist") "$RABBIT_BIN/rabbitmqctl" -n "$node" join_cluster "$first" &&
      env $(rabbit_env "$dir" "$node" "$amqp" "$mgmt" "$prom" "$dist") "$RABBIT_BIN/rabbitmqctl" -n "$node" start_app; } >"$dir/rabbitmq/join.log" 2>&1 \
      || { cat "$dir/rabbitmq/join.log" >&2; die "$node could not join $first"; }
  done 3< <(rabbit_cluster_nodes "$@")
}

# rabbit_cluster_stop STACKDIR PREFIX AMQP MGMT PROM DIST [NODE_INDEX...]: stops the nodes
# (all, or those numbered), last first.
rabbit_cluster_stop() {
  local args=("$1" "$2" "$3" "$4" "$5" "$6") dir node amqp mgmt prom dist i=0 lines=()
  shift 6
  while read -r dir node amqp mgmt prom dist; do
    i=$((i + 1))
    if [ $# -eq 0 ] || [[ " $* " == *" $i "* ]]; then lines=("$dir $node" "${lines[@]}"); fi
  done < <(rabbit_cluster_nodes "${args[@]}")
  for line in "${lines[@]}"; do rabbit_stop ${line}; done
}

# rabbit_cluster_urls STACKDIR PREFIX AMQP MGMT PROM DIST [HOST]: the nodes' AMQP URLs, comma-separated.
rabbit_cluster_urls() {
  local host=${7:-127.0.0.1}
  echo "amqp://guest:guest@$host:$3/,amqp://guest:guest@$host:$(($3 + 1))/,amqp://guest:guest@$host:$(($3 + 2))/"
}

# rabbit_node_name PREFIX STACKDIR: a node name unique to this folder, so stacks of several
# checkouts can run side by side on one machine.
rabbit_node_name() { echo "$1-$(printf '%s' "$2" | md5sum | cut -c1-8)@localhost"; }

# ---- Dovecot (IMAP, for the email workload's tests and benchmark) --------------------------

# dovecot_start DIR PORT: Debian's Dovecot serving IMAP on 127.0.0.1:PORT from DIR, no system
# service: any user name logs in with the password in DIR/password (made at the first start;
# each user is an empty mailbox until mail arrives), mail in Maildirs under DIR/mail/<user>
# (emptied first), log in DIR/dovecot.log. As root its processes run as the package's `dovecot` and `dovenull` users,
# which own the mail folder.
dovecot_start() {
  local dir=$1 port=$2 internal login uid gid mail
  install_debs dovecot-imapd
  dovecot_stop "$dir"
  mail="$dir/mail"
  mkdir -p "$dir/state"
  [ -s "$dir/password" ] || head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/password"
  if is_root; then
    internal=dovecot; login=dovenull; uid=$(id -u dovecot); gid=$(id -g dovecot)
    # A project inside a folder `dovecot` cannot enter keeps its mail under /var/tmp.
    runuser -u dovecot -- test -x "$dir" 2>/dev/null \
      || mail="/var/tmp/esteira-dovecot-$(printf '%s' "$dir" | md5sum | cut -c1-8)"
  else
    internal=$(id -un); login=$internal; uid=$(id -u); gid=$(id -g)
  fi
  rm -rf "$mail"
  mkdir -p "$mail"
  cat >"$dir/dovecot.conf" <<EOF
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = $internal
default_internal_group = $(id -gn "$internal")
default_login_user = $login
first_valid_uid = 1
first_valid_gid = 0
mail_location = maildir:$mail/%u
mail_fsync = never
passdb {
  driver = static
  args = password=$(cat "$dir/password")
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$mail/%u
}
protocol imap {
  mail_max_userip_connections = 200
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
EOF
  if is_root; then chown -R dovecot:dovecot "$mail"; fi
  /usr/sbin/dovecot -c "$dir/dovecot.conf" </dev/null >/dev/null 2>&1 \
    || die "dovecot did not start: $(tail -5 "$dir/dovecot.log" 2>/dev/null)"
  wait_for_port "$port" 20 || die "dovecot is not listening on $port: $(tail -5 "$dir/dovecot.log" 2>/dev/null)"
}

# mail_servers_start DIR: the email workload's test servers: Dovecot for IMAP on a free port
# from DIR/dovecot (each test adds users of its own), and the virtualenv of the SMTP sink each
# test starts for itself (Tests/Support/smtp_sink.py, aiosmtpd); exports where they are
# (ESTEIRA_TEST_IMAP_PORT, ESTEIRA_TEST_IMAP_PASSWORD, ESTEIRA_TEST_SMTP_PYTHON,
# ESTEIRA_TEST_SMTP_SINK). dovecot_stop DIR/dovecot stops it.
mail_servers_start() {
  local port
  port=$(free_port 24143)
  dovecot_start "$1/dovecot" "$port"
  python_venv "$ESTEIRA_ROOT/.build/smtp-venv" "aiosmtpd==1.4.6"
  export ESTEIRA_TEST_IMAP_PORT="$port"
  ESTEIRA_TEST_IMAP_PASSWORD="$(cat "$1/dovecot/password")"
  export ESTEIRA_TEST_IMAP_PASSWORD
  export ESTEIRA_TEST_SMTP_PYTHON="$ESTEIRA_ROOT/.build/smtp-venv/bin/python"
  export ESTEIRA_TEST_SMTP_SINK="$ESTEIRA_ROOT/Tests/Support/smtp_sink.py"
}

# dovecot_stop DIR: stops the Dovecot dovecot_start started there, waiting for it to go.
dovecot_stop() {
  local pid i
  pid=$(cat "$1/run/master.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# ---- Servers of their own (benchmarks) ----------------------------------------------------

# servers_start STACKDIR NODE AMQP_BASE PG_BASE: a fresh PostgreSQL and RabbitMQ on free ports
# at or above the bases, data under STACKDIR (wiped first); exports ESTEIRA_DATABASE_URL,
# ESTEIRA_AMQP_URL, and the ports chosen (ESTEIRA_SERVERS_PORTS="AMQP MGMT PROM DIST PG") for
# a script that restarts them.
servers_start() {
  local stack=$1 node=$2 amqp mgmt prom dist pg
  servers_stop "$stack" "$node"
  mkdir -p "$stack"
  amqp=$(free_port "$3"); mgmt=$(free_port $(($3 + 10000))); prom=$(free_port $((mgmt + 20)))
  dist=$(free_port $((amqp + 1000))); pg=$(free_port "$4")
  pg_start "$stack" "$pg"
  rabbit_start "$stack" "$node" "$amqp" "$mgmt" "$prom" "$dist"
  export ESTEIRA_DATABASE_URL="postgres://esteira@127.0.0.1:$pg/esteira"
  export ESTEIRA_AMQP_URL="amqp://guest:guest@127.0.0.1:$amqp/"
  export ESTEIRA_SERVERS_PORTS="$amqp $mgmt $prom $dist $pg"
}

# test_servers_or_own STACKDIR NAME AMQP_BASE PG_BASE: make test's servers when it gave them
# (ESTEIRA_TEST_DATABASE_URL, ESTEIRA_TEST_AMQP_URL); else a PostgreSQL and a RabbitMQ of our
# own under STACKDIR (node NAME), the same ESTEIRA_TEST_* variables set to them and own_stack
# to STACKDIR, for the caller to stop (servers_stop). own_stack is empty on make test's.
test_servers_or_own() {
  own_stack=""
  [ -n "${ESTEIRA_TEST_DATABASE_URL:-}" ] && [ -n "${ESTEIRA_TEST_AMQP_URL:-}" ] && return 0
  local mgmt
  ensure_packages
  own_stack=$1
  servers_start "$own_stack" "$(rabbit_node_name "$2" "$own_stack")" "$3" "$4"
  ESTEIRA_TEST_DATABASE_URL=$ESTEIRA_DATABASE_URL
  ESTEIRA_TEST_AMQP_URL=$ESTEIRA_AMQP_URL
  read -r _ mgmt _ _ _ <<<"$ESTEIRA_SERVERS_PORTS"
  ESTEIRA_TEST_AMQP_MGMT_URL="http://guest:guest@127.0.0.1:$mgmt"
}

# servers_stop STACKDIR NODE: stops what servers_start started and removes its data.
servers_stop() {
  rabbit_stop "$1" "$2" || true
  pg_stop "$1" || true
  pg_destroy "$1" || true
  rm -rf "$1"
}
