# Nodes on one machine, for multi-node tests and benchmarks (root only): each node is
# a network namespace with its own address on a bridge, its own hostname (UTS
# namespace) and its own /tmp (mount namespace), held open by a sleeping process whose
# namespaces node_run enters. Links are veth pairs capped by tc tbf at both ends, so
# each direction runs at the rate, as on a full-duplex link. Source it, then:
#
#   nodes_up N RATE DIR   # nodes n1..nN at $NODES_NET.11.., bridge at $NODES_NET.1
#   node_run I CMD...     # CMD on node I (working directory kept)
#   nodes_rsh_agent FILE  # an "ssh" for Open MPI (plm_rsh_agent) that enters the node
#   nodes_down            # removes everything nodes_up made (safe to call twice)
#
# DIR (outside /tmp, which each node replaces) keeps the holders' pid files. Paths
# under /tmp listed in NODES_SHARED (e.g. a source tree cloned there) stay visible on
# every node, as a shared file system would keep them.

NODES_N=0
NODES_DIR=
NODES_TAG=rdn$$   # bridge $NODES_TAG-br, host ends ${NODES_TAG}v<i>, namespaces $NODES_TAG-<i>

nodes_fail() { echo "FAIL: $*" >&2; return 1; }

# A /24 that no route on this machine uses yet.
nodes_pick_net() {
  local third
  for third in $(seq 77 250); do
    ip route show | grep -q "^10\.213\.$third\." || { NODES_NET=10.213.$third; return 0; }
  done
  nodes_fail "no free 10.213.x.0/24 for the nodes"
}

# nodes_cap DEV RATE [NETNS]: tbf on DEV's egress.
nodes_cap() {
  local run=()
  [ $# -gt 2 ] && run=(ip netns exec "$3")
  "${run[@]}" tc qdisc add dev "$1" root tbf rate "$2" burst 1mb latency 100ms ||
    nodes_fail "tc tbf rate $2 on $1 failed"
}

# Namespaces, bridges and links left by a run that was killed (SIGKILL leaves no trap to
# run): those whose creator, named by the pid in their names, is gone.
nodes_reap_stale() {
  local name pid
  for name in $(ip netns list 2> /dev/null | awk '{print $1}' | grep -E '^rdn[0-9]+-' || true); do
    pid=${name#rdn}
    pid=${pid%%-*}
    kill -0 "$pid" 2> /dev/null || ip netns del "$name" 2> /dev/null || true
  done
  for name in $(ip -o link show type bridge 2> /dev/null | awk -F': ' '{print $2}' | grep -E '^rdn[0-9]+-br$' || true); do
    pid=${name#rdn}
    pid=${pid%-br}
    kill -0 "$pid" 2> /dev/null || ip link del "$name" 2> /dev/null || true
  done
  # Host ends of veth pairs whose node namespace outlived its holder for a while.
  for name in $(ip -o link show type veth 2> /dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
                grep -E '^rdn[0-9]+v[0-9]+$' || true); do
    pid=${name#rdn}
    pid=${pid%v*}
    kill -0 "$pid" 2> /dev/null || ip link del "$name" 2> /dev/null || true
  done
}

nodes_up() {
  local n=$1 rate=$2 i ns
  NODES_DIR=$3
  nodes_reap_stale
  nodes_pick_net || return 1
  ip link add "$NODES_TAG-br" type bridge || return 1
  NODES_N=$n
  ip link set "$NODES_TAG-br" up
  ip addr add "$NODES_NET.1/24" dev "$NODES_TAG-br"
  for i in $(seq "$n"); do
    ns=$NODES_TAG-$i
    ip netns add "$ns" || return 1
    ip link add "${NODES_TAG}v$i" type veth peer name eth0 netns "$ns" || return 1
    ip link set "${NODES_TAG}v$i" master "$NODES_TAG-br" up
    ip -n "$ns" addr add "$NODES_NET.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    if [ -n "$rate" ]; then
      nodes_cap "${NODES_TAG}v$i" "$rate" || return 1
      nodes_cap eth0 "$rate" "$ns" || return 1
    fi
    # The holder: its namespaces are the node's.
    nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation private \
      bash -c "$(nodes_holder_script "$i")" < /dev/null > /dev/null 2>&1 &
    for _ in $(seq 50); do [ -s "$NODES_DIR/node$i.pid" ] && break; sleep 0.1; done
    [ -s "$NODES_DIR/node$i.pid" ] || { nodes_fail "node n$i did not start"; return 1; }
  done
}

# The shell that makes node I's hostname and /tmp, then sleeps holding them: the
# host's /tmp stays reachable under DIR/host-tmp-I for the NODES_SHARED binds.
nodes_holder_script() {
  local i=$1 keep p binds=""
  keep=$NODES_DIR/host-tmp-$i
  for p in ${NODES_SHARED:-}; do
    case $p in
      /tmp/?*) binds+=" && mkdir -p '$p' && mount --bind '$keep/${p#/tmp/}' '$p'" ;;
    esac
  done
  mkdir -p "$keep"
  echo "hostname n$i && mount --bind /tmp '$keep' && mount -t tmpfs -o size=2g tmpfs /tmp$binds" \
       "&& echo \$\$ > '$NODES_DIR/node$i.pid' && exec sleep infinity"
}

node_run() {
  local i=$1
  shift
  nsenter -t "$(cat "$NODES_DIR/node$i.pid")" -n -u -m --wd="$PWD" -- "$@"
}

# The node's bytes sent over its link.
node_tx_bytes() { ip netns exec "$NODES_TAG-$1" cat /sys/class/net/eth0/statistics/tx_bytes; }
node_link() { ip -n "$NODES_TAG-$1" link set eth0 "$2"; }

nodes_rsh_agent() {
  cat > "$1" <<EOF
#!/bin/sh
# Open MPI's rsh agent for the nodes of tools/netns_nodes.bash: HOST COMMAND... runs
# COMMAND inside node HOST's namespaces, as ssh would run it on a real node.
host=\$1; shift
exec nsenter -t "\$(cat "$NODES_DIR/node\${host#n}.pid")" -n -u -m --wd=/ -- /bin/sh -c "\$*"
EOF
  chmod +x "$1"
}

# The pids (all, or those whose command line matches `pattern`, as pgrep -f) in the
# network namespace of `holder`, but not holder itself; none for the machine's own.
nodes_members() { # holder [pattern]
  local holder=$1 ns p
  ns=$(readlink "/proc/$holder/ns/net" 2> /dev/null) || return 0
  [ "$ns" != "$(readlink /proc/$$/ns/net)" ] || return 0
  # "." matches every process with a command line or a name.
  for p in $(pgrep -f "${2:-.}"); do
    [ "$p" != "$holder" ] && [ "$(readlink "/proc/$p/ns/net" 2> /dev/null)" = "$ns" ] && echo "$p"
  done
  return 0
}

# The pids running on node i whose command line matches `pattern`.
node_pids() { # i pattern
  nodes_members "$(cat "$NODES_DIR/node$1.pid")" "$2"
}

# Kills every process but `holder` in holder's network namespace.
nodes_kill_members() {
  local p
  for p in $(nodes_members "$1"); do kill -KILL "$p" 2> /dev/null || true; done
  return 0
}

nodes_down() {
  local i pid
  for i in $(seq "$NODES_N"); do
    pid=$(cat "$NODES_DIR/node$i.pid" 2> /dev/null || true)
    # Whatever still runs in the node (a step daemon orphaned by a lost link, a rank)
    # goes with it, then its holder.
    [ -n "$pid" ] && nodes_kill_members "$pid"
    [ -n "$pid" ] && kill "$pid" 2> /dev/null
    ip netns del "$NODES_TAG-$i" 2> /dev/null
    # The pair goes with its host end, even while the kernel still holds the node's
    # namespace (sockets of a cut link linger).
    ip link del "${NODES_TAG}v$i" 2> /dev/null || true
  done
  ip link del "$NODES_TAG-br" 2> /dev/null
  NODES_N=0
  return 0
}
