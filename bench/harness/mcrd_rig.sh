# shellcheck shell=bash
# mcrd for the harness's shell tools (relay_cost.sh, cpu_trace.sh). Source it after
# tests/rig/netns.sh, and call mcrd_start after rig_topology.
#
# mcrd_start BIN CPU INGRESS RULES [ARG...]: starts BIN/mcrd in the rly namespace with its shard
# and control thread on CPU, the rules file RULES, no state file and no metrics, plus ARGs; waits
# for its socket and its shard thread. Sets MCRD_PID and MCRD_SHARD_TASK (/proc/PID/task/TID of
# mcr-shard0: its schedstat, and the TID for traces). Fails the run (rig_fail) otherwise.
mcrd_start() {
  local bin=$1 cpu=$2 ingress=$3 rules=$4 comm=""
  shift 4
  rig_bg rly mcrd taskset -c "$cpu" "$bin/mcrd" supervisor --cpus "$cpu" --control-cpu "$cpu" \
    --control-socket-path "$RIG_TMP/mcrd.sock" --state-file off --metrics-listen off \
    --config "$rules" --log-level warning --ingress "$ingress" "$@"
  MCRD_PID=$RIG_LAST_PID
  rig_wait_file "$RIG_TMP/mcrd.sock" 10 || rig_fail "mcrd did not start: $(cat "$RIG_TMP/mcrd.log")"
  for _ in $(seq 50); do
    comm=$(grep -l '^mcr-shard0$' /proc/"$MCRD_PID"/task/*/comm 2>/dev/null | head -1 || true)
    [ -n "$comm" ] && break
    sleep 0.1
  done
  [ -n "$comm" ] || rig_fail "no mcr-shard0 thread in mcrd ($MCRD_PID)"
  MCRD_SHARD_TASK=$(dirname "$comm")
}
