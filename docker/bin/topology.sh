# docker/bin/topology.sh — read docker/topology into shell variables
# (sourced by the launchers, the scenario and the checks).
#   NETWORK              the subnet
#   HOSTS                host names, in file order
#   ADDR[h] ID[h] ROLE[h] AUTH[h]
#   GCKS                 the host whose role is gcks
# shellcheck shell=bash
TOPOLOGY=${TOPOLOGY:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/topology}
NETWORK=""
HOSTS=()
GCKS=""
declare -A ADDR=() ID=() ROLE=() AUTH=()
while read -r kind a b c d e rest; do
	case "$kind" in
		''|'#'*) continue ;;
		network) NETWORK=$a ;;
		host)
			[ -n "$e" ] && [ -z "$rest" ] || { echo "$TOPOLOGY: bad host line: $kind $a $b $c $d $e $rest" >&2; return 1; }
			HOSTS+=("$a"); ADDR[$a]=$b; ID[$a]=$c; ROLE[$a]=$d; AUTH[$a]=$e
			[ "$d" = gcks ] && GCKS=$a ;;
		*) echo "$TOPOLOGY: unknown line '$kind'" >&2; return 1 ;;
	esac
done <"$TOPOLOGY"
[ -n "$NETWORK" ] && [ -n "$GCKS" ] || { echo "$TOPOLOGY: needs a network and a gcks host" >&2; return 1; }
