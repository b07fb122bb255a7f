#!/usr/bin/env bash
# A one-node SLURM cluster with accounting and two placeholder GPUs on this Debian/Ubuntu machine,
# for trying the slurm profiles on a laptop or in CI (docs/slurm.md says what it provides). As root:
#
#   scripts/slurm_local.sh start    # install if missing, configure, start, wait until the node is idle
#   scripts/slurm_local.sh status   # daemons, node, partitions, accounts
#   scripts/slurm_local.sh stop     # stop every daemon this script started
#
# start is idempotent: it starts what does not run, and restarts the SLURM daemons only when the
# configuration it renders from scripts/slurm_local/*.conf.in into /etc/slurm changed. No systemd:
# the DAEMONS are started directly, in order, with the pid files in PIDFILE.
#
# Environment: SLURM_LOCAL_STATE (default /var/lib/slurm-local), SLURM_LOCAL_LOG
# (/var/log/slurm-local), SLURM_LOCAL_TIMEOUT (seconds to wait for each daemon, default 60).
set -euo pipefail

STATE_DIR=${SLURM_LOCAL_STATE:-/var/lib/slurm-local}
LOG_DIR=${SLURM_LOCAL_LOG:-/var/log/slurm-local}
RUN_DIR=/run/slurm-local
CONF_DIR=/etc/slurm # where Debian's slurm-client, slurmctld and slurmd look (no SLURM_CONF needed)
TEMPLATES=$(dirname "${BASH_SOURCE[0]}")/slurm_local
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
CLUSTER=local
ACCOUNT=ci
NODE=$(hostname -s)
DB_SOCKET=/run/mysqld/mysqld.sock
DB_USER=slurm
DB_PASS=slurm-local # the database listens on its Unix socket only (--skip-networking)
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd) # start order; stop is the reverse
declare -A PIDFILE=([munged]=/run/munge/munged.pid [mariadbd]=/run/mysqld/mariadbd.pid
    [slurmdbd]=$RUN_DIR/slurmdbd.pid [slurmctld]=$RUN_DIR/slurmctld.pid [slurmd]=$RUN_DIR/slurmd.pid)
declare -A LOG=([munged]=/var/log/munge/munged.log [mariadbd]=$LOG_DIR/mariadb.log
    [slurmdbd]=$LOG_DIR/slurmdbd.log [slurmctld]=$LOG_DIR/slurmctld.log [slurmd]=$LOG_DIR/slurmd.log)
# what answers once a daemon is up (for slurmd, its pid file: wait_idle then awaits the node)
declare -A PROBE=([munged]='munge -n | unmunge' [mariadbd]="mariadb-admin --socket=$DB_SOCKET ping"
    [slurmdbd]='sacctmgr -n list cluster' [slurmctld]='scontrol ping' [slurmd]="test -s ${PIDFILE[slurmd]}")

say() { printf 'slurm_local: %s\n' "$*"; }

# fail WHAT [LOG...]: say what failed and show the end of each log, then exit 1
fail() {
    printf '\nslurm_local: FAILED: %s\n' "$1" >&2
    shift
    local f
    for f; do printf -- '--- last 40 lines of %s ---\n' "$f" && tail -n 40 "$f" 2>&1; done >&2
    exit 1
}

# wait_for SECONDS [--watch PID] COMMAND...: poll COMMAND every 0.2 s until it succeeds; give up
# after SECONDS, or as soon as the process PID has died
wait_for() {
    local deadline=$((SECONDS + $1)) watch=
    shift
    if [[ $1 == --watch ]]; then watch=$2 && shift 2; fi
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        [[ -z $watch ]] || kill -0 "$watch" 2>/dev/null || return 1
        sleep 0.2
    done
}

need_root() {
    [[ $(id -u) -eq 0 ]] && return 0
    echo "slurm_local: must run as root (it installs packages and starts system daemons)" >&2
    exit 2
}

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }

apt_install() { apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >"$LOG_DIR/apt.log" 2>&1; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || fail "packages missing (${missing[*]}) and no apt-get"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # no package lists yet (a fresh container) or stale ones (404s): update, and retry once
    apt-cache show slurmctld >/dev/null 2>&1 || apt-get update -qq || fail "apt-get update"
    apt_install || { apt-get update -qq && apt_install; } || fail "apt-get install" "$LOG_DIR/apt.log"
}

# render NAME MODE: $TEMPLATES/NAME.in with each @KEY@ replaced by its value, into $CONF_DIR/NAME
# if that differs (then CONFIG_CHANGED=1)
render() {
    local tmp cpus mem_mb
    # nproc obeys OMP_NUM_THREADS: under OMP_NUM_THREADS=1 the node had 1 CPU and 2-CPU jobs pended
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo) # 90% of the memory
    tmp=$(mktemp)
    sed -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@NODE@|$NODE|g" -e "s|@CPUS@|$cpus|g" \
        -e "s|@MEM_MB@|$mem_mb|g" -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@LOG_DIR@|$LOG_DIR|g" \
        -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@DB_USER@|$DB_USER|g" -e "s|@DB_PASS@|$DB_PASS|g" \
        "$TEMPLATES/$1.in" >"$tmp"
    if grep -n '@[A-Z_]*@' "$tmp" >&2; then fail "a placeholder in $TEMPLATES/$1.in has no value"; fi
    cmp -s "$tmp" "$CONF_DIR/$1" || { install -m "$2" "$tmp" "$CONF_DIR/$1" && CONFIG_CHANGED=1; }
    rm -f "$tmp"
}

render_configs() {
    CONFIG_CHANGED=0
    mkdir -p "$CONF_DIR" "$STATE_DIR/ctld" "$STATE_DIR/d" "$STATE_DIR/dev" "$LOG_DIR" "$RUN_DIR"
    # the placeholder GPUs of gres.conf: character devices, as slurmd wants, that are copies of
    # /dev/null (1:3), or links to it where mknod is not allowed
    local dev
    for dev in "$STATE_DIR"/dev/nvidia{0,1}; do
        [[ -c $dev ]] && continue
        rm -f "$dev"
        mknod -m 666 "$dev" c 1 3 2>/dev/null || ln -s /dev/null "$dev"
    done
    render slurm.conf 644
    render gres.conf 644
    render slurmdbd.conf 600 # it holds the database password
}

# start_<daemon>: launch it (called when its pid file names no live process)
start_munged() {
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --force >/dev/null 2>&1 ||
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
    runuser -u munge -- /usr/sbin/munged --force
}

start_mariadbd() {
    mariadb-admin --socket="$DB_SOCKET" ping >/dev/null 2>&1 && return 0 # a system MariaDB will do
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking --socket="$DB_SOCKET" \
        --pid-file="${PIDFILE[mariadbd]}" </dev/null >"${LOG[mariadbd]}" 2>&1 &
    wait_for "$TIMEOUT" --watch $! mariadb-admin --socket="$DB_SOCKET" ping # (it does not fork)
}

start_slurmdbd() { # after the database user it logs in as
    mariadb --socket="$DB_SOCKET" -e "CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY
        '$DB_PASS'; GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'localhost';" ||
        fail "creating the database user $DB_USER" "${LOG[mariadbd]}"
    slurmdbd
}

start_slurmctld() { # after its cluster is known to slurmdbd
    [[ -n $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]] ||
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail "sacctmgr add cluster $CLUSTER"
    slurmctld
}

start_slurmd() { slurmd; }

# start_daemon NAME: start it unless it runs, then wait until its PROBE answers
start_daemon() {
    pid_alive "${PIDFILE[$1]}" || "start_$1" || fail "$1 did not start" "${LOG[$1]}"
    wait_for "$TIMEOUT" bash -c "${PROBE[$1]}" ||
        fail "$1 does not answer (${PROBE[$1]}) within ${TIMEOUT}s" "${LOG[$1]}"
}

# stop_daemon NAME: TERM, and KILL after 10 s
stop_daemon() {
    local pid
    pid_alive "${PIDFILE[$1]}" || return 0
    pid=$(cat "${PIDFILE[$1]}")
    kill "$pid" 2>/dev/null || true
    if wait_for 10 dead "$pid"; then
        say "stopped $1 ($pid)"
    else
        kill -9 "$pid" 2>/dev/null || true
        say "killed $1 ($pid)"
    fi
}

node_state() { { sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true; } | head -n 1; }

# wait_idle: until the node takes jobs; a drained or down node is told once to resume
wait_idle() {
    local deadline=$((SECONDS + TIMEOUT)) state resumed=0
    while state=$(node_state) && [[ ! $state =~ ^(idle|mixed|allocated|completing)$ ]]; do
        if ((!resumed)) && [[ $state =~ drain|^down|^fail ]]; then
            scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
            resumed=1
        fi
        ((SECONDS < deadline)) || fail "node $NODE is '${state:-unknown}' after ${TIMEOUT}s, not idle
$(scontrol show node "$NODE" 2>&1 | grep -Ei 'State|Reason' || true)" "${LOG[slurmd]}" "${LOG[slurmctld]}"
        sleep 0.2
    done
}

# add_account: the account ci with root in it (root's default account stays root)
add_account() {
    [[ -n $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]] ||
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="CI account" \
            organization=lazyphase >/dev/null || fail "sacctmgr add account $ACCOUNT"
    [[ -n $(sacctmgr -n -P list assoc user=root account="$ACCOUNT" format=user) ]] ||
        sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null ||
        fail "sacctmgr add user root account=$ACCOUNT"
    # slurmctld learns new associations from slurmdbd asynchronously: wait until it accepts one
    wait_for "$TIMEOUT" bash -c \
        "scontrol show assoc_mgr users=root accounts=$ACCOUNT flags=assoc | grep -q 'Account=$ACCOUNT'" ||
        fail "slurmctld does not know the association root/$ACCOUNT" "${LOG[slurmctld]}"
}

cmd_start() {
    local t0=$SECONDS d
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    install_packages
    render_configs
    if ((CONFIG_CHANGED)) && pid_alive "${PIDFILE[slurmctld]}"; then
        say "configuration changed: restarting the SLURM daemons"
        for d in slurmd slurmctld slurmdbd; do stop_daemon "$d"; done
    fi
    for d in "${DAEMONS[@]}"; do start_daemon "$d"; done
    wait_idle
    add_account
    say "cluster '$CLUSTER' up in $((SECONDS - t0))s: node $NODE $(node_state)," \
        "partitions cpu (default), gpu and short (2 minutes), account $ACCOUNT (export SBATCH_ACCOUNT=$ACCOUNT)"
}

cmd_stop() {
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_daemon "${DAEMONS[i]}"; done
}

cmd_status() {
    local d rc=0
    for d in "${DAEMONS[@]}"; do
        if pid_alive "${PIDFILE[$d]}"; then
            printf '%-10s running (pid %s)\n' "$d" "$(cat "${PIDFILE[$d]}")"
        else
            printf '%-10s not running\n' "$d"
            rc=1
        fi
    done
    ((rc == 0)) || return 1
    sinfo -o '%P %a %D %T %C %m %G' && sacctmgr -n -P list assoc cluster="$CLUSTER" format=account,user
}

case ${1:-} in
    start | stop) need_root && "cmd_$1" ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2 && exit 2 ;;
esac
