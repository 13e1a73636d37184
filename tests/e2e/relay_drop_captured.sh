#!/usr/bin/env bash
# packaging/nftables/mcr-drop-captured.nft, loaded as shipped into the relay's namespace: the
# host's IP stack no longer receives the input group (a local listener on it gets nothing, the
# rule's counter counts every datagram), while mcrd still relays all of it and the group stays
# joined. Without the file, the same listener gets everything: the check can tell them apart.
# Then the script `mcrctl nft-drop` writes for the running rules, with a source-specific rule
# among them, does the same; with no rules left it loads as an empty table.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init relay_drop_captured
for b in mcrd mcrctl mcrgen; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
rig_require_tools nft jq
rig_nftables_work || rig_skip "nftables does not work here (no nf_tables in the kernel?)"
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
# round NAME [GROUP OUT_PORT]: sends N datagrams to GROUP:5000 (239.1.1.1); prints "relayed
# local", the unique datagrams that reached the receiver behind mcrd (239.2.2.2:OUT_PORT, 6000)
# and a listener on GROUP inside the relay's namespace.
round() {
  local name=$1 group=${2:-239.1.1.1} out_port=${3:-6000}
  rig_bg rcv "far.$name" "$MCR_BIN/mcrgen" recv --group 239.2.2.2 --port "$out_port" \
    --interface veth0 --expect "$N" --timeout 10 --json --ready-file "$RIG_TMP/far.$name.ready"
  local far=$RIG_LAST_PID
  rig_bg rly "local.$name" "$MCR_BIN/mcrgen" recv --group "$group" --port 5000 \
    --interface in0 --expect "$N" --timeout 4 --json --ready-file "$RIG_TMP/local.$name.ready"
  local near=$RIG_LAST_PID
  # A listener that is not ready would count 0 and pass the "dropped" checks: no round then.
  if ! rig_wait_file "$RIG_TMP/far.$name.ready" 10 || ! rig_wait_file "$RIG_TMP/local.$name.ready" 10
  then
    echo "none none"
    return
  fi
  rig_exec snd "$MCR_BIN/mcrgen" send --group "$group" --port 5000 --interface veth0 \
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
listing=$(rig_exec rly nft list table ip mcr_drop_captured) || rig_fail "no table after reloading"
[ "$(grep -c counter <<<"$listing")" = 1 ] || rig_fail "reloading did not replace the rule: $listing"
rig_exec rly nft delete table ip mcr_drop_captured
read -r relayed near <<<"$(round removed)"
[ "$relayed" = "$N" ] && [ "$near" = "$N" ] ||
  rig_fail "after removing the rule: relayed $relayed, local $near of $N"
echo "ok: removing the table restores local delivery"

# The script mcrctl writes for the running rules: one any-source and one source-specific input.
ctl add --name ssm --input-interface in0 --input-source 10.10.1.1 --input-group 239.1.1.5 \
  --input-port 5000 --outputs 239.2.2.2:6001:out0 >/dev/null
ctl nft-drop >"$RIG_TMP/generated.nft" || rig_fail "mcrctl nft-drop failed"
grep -q '"in0" . 10.10.1.1 . 239.1.1.5 . 5000,' "$RIG_TMP/generated.nft" ||
  rig_fail "mcrctl nft-drop lists no source-specific element: $(cat "$RIG_TMP/generated.nft")"
rig_exec rly nft -f "$RIG_TMP/generated.nft" || rig_fail "nft refused mcrctl nft-drop's script"
read -r relayed near <<<"$(round generated-any)"
[ "$relayed" = "$N" ] && [ "$near" = 0 ] ||
  rig_fail "mcrctl nft-drop, any-source rule: relayed $relayed, local $near of $N"
read -r relayed near <<<"$(round generated-ssm 239.1.1.5 6001)"
[ "$relayed" = "$N" ] && [ "$near" = 0 ] ||
  rig_fail "mcrctl nft-drop, source-specific rule: relayed $relayed, local $near of $N"
echo "ok: mcrctl nft-drop's script drops both inputs locally; mcrd relays all of both"

# With no rules left the script empties the table: the host's stack gets the groups again.
ctl remove --name cam >/dev/null
ctl remove --name ssm >/dev/null
ctl nft-drop | rig_exec rly nft -f - || rig_fail "nft refused the script for no rules"
listing=$(rig_exec rly nft list table ip mcr_drop_captured) ||
  rig_fail "the script for no rules left no table"
! grep -q counter <<<"$listing" || rig_fail "the table still drops with no rules: $listing"
echo "ok: with no rules mcrctl nft-drop leaves the table empty"
