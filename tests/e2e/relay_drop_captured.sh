#!/usr/bin/env bash
# packaging/nftables/mcr-drop-captured.nft, loaded as shipped into the relay's namespace: the
# host's IP stack no longer receives the input group (a local listener on it gets nothing, the
# rule's counter counts every datagram), while mcrd still relays all of it and the group stays
# joined. Without the file, the same listener gets everything: the check can tell them apart.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init relay_drop_captured
for b in mcrd mcrctl mcrgen; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
rig_require_tools nft jq
NFT_FILE=$MCR_SOURCE_DIR/packaging/nftables/mcr-drop-captured.nft
rig_topology

SOCK=$RIG_TMP/mcrd.sock
rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --cpus 0 --control-socket-path "$SOCK" \
  --state-file off --metrics-listen off
rig_wait_file "$SOCK"
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
ctl add --name cam --input-interface in0 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6000:out0 >/dev/null

N=400
# round NAME: sends N datagrams to 239.1.1.1:5000; prints "relayed local", the unique datagrams
# that reached the receiver behind mcrd and a listener on the group inside the relay's namespace.
round() {
  local name=$1
  rig_bg rcv "far.$name" "$MCR_BIN/mcrgen" recv --group 239.2.2.2 --port 6000 \
    --interface veth0 --expect "$N" --timeout 10 --json --ready-file "$RIG_TMP/far.$name.ready"
  local far=$RIG_LAST_PID
  rig_bg rly "local.$name" "$MCR_BIN/mcrgen" recv --group 239.1.1.1 --port 5000 \
    --interface in0 --expect "$N" --timeout 4 --json --ready-file "$RIG_TMP/local.$name.ready"
  local near=$RIG_LAST_PID
  rig_wait_file "$RIG_TMP/far.$name.ready" 10
  rig_wait_file "$RIG_TMP/local.$name.ready" 10
  rig_exec snd "$MCR_BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface veth0 \
    --count "$N" --rate 2000 --ttl 8 >/dev/null
  wait "$far" || true
  wait "$near" || true
  echo "$(unique_of "$RIG_TMP/far.$name.log")" "$(unique_of "$RIG_TMP/local.$name.log")"
}
# unique_of LOG: the report's unique count (the log holds stderr's "ready" line before the JSON).
unique_of() { sed -n '/^{/,$p' "$1" | jq -r .unique 2>/dev/null || echo none; }

read -r relayed near <<<"$(round plain)"
[ "$relayed" = "$N" ] || rig_fail "without the rule: mcrd relayed $relayed of $N"
[ "$near" = "$N" ] || rig_fail "without the rule: the local listener got $near of $N (the check needs it to get all)"
echo "ok: without the rule the host's stack delivers the input group too ($near of $N)"

rig_exec rly nft -f "$NFT_FILE" || rig_fail "nft refused $NFT_FILE"
read -r relayed near <<<"$(round dropped)"
[ "$relayed" = "$N" ] || rig_fail "with the rule: mcrd relayed $relayed of $N"
[ "$near" = "0" ] || rig_fail "with the rule: the local listener still got $near of $N"
dropped=$(rig_exec rly nft -j list table ip mcr_drop_captured |
  jq '[.nftables[] | .rule? | select(.) | .expr[] | .counter? | select(.) | .packets] | add')
[ "$dropped" -ge "$N" ] || rig_fail "the rule's counter shows $dropped drops, expected >= $N"
rig_igmp_member rly in0 239.1.1.1 || rig_fail "the group is no longer joined on in0"
[ "$(ctl --json list | jq -r '.rules[0].membership.state')" = active ] ||
  rig_fail "mcrctl list no longer shows the input joined: $(ctl list)"
echo "ok: with the rule mcrd relays all $relayed, the host's stack gets none, $dropped dropped"

# Loading it again replaces the table (the file is idempotent), and removing it restores delivery.
rig_exec rly nft -f "$NFT_FILE" || rig_fail "nft refused $NFT_FILE a second time"
[ "$(rig_exec rly nft list tables | grep -c mcr_drop_captured)" = 1 ] || rig_fail "two tables after reloading"
rig_exec rly nft delete table ip mcr_drop_captured
read -r relayed near <<<"$(round removed)"
[ "$relayed" = "$N" ] && [ "$near" = "$N" ] ||
  rig_fail "after removing the rule: relayed $relayed, local $near of $N"
echo "ok: removing the table restores local delivery"
