#!/bin/sh
# consume.sh: receive ChronosHub events from chronoshub-sidecar's REST API with
# nothing but POSIX sh, sed and curl.
#
# It reads the NDJSON stream (GET /v1/events:stream), prints one JSON line per
# event on stdout ({"id","type","attempt","payload","action"}) and settles each
# event while the stream is open (POST /v1/events:ack): it acknowledges events
# whose payload is a JSON object and rejects the others, and every event of
# $REJECT_TYPE, with a redelivery delay, so that the sidecar offers them again.
# When the stream breaks or ends it reconnects with exponential backoff and
# jitter. SIGINT or SIGTERM stops it.
#
# Settings (environment):
#   CHRONOSHUB_HTTP_ADDR     the sidecar's REST address (127.0.0.1:50052)
#   CHRONOSHUB_SUBSCRIPTION  subscription name (example-curl)
#   CHRONOSHUB_EVENT_TYPES   comma-separated event-type filters (manuscript.>)
#   REJECT_TYPE              reject every event of this type (none)
#   REDELIVER_DELAY          delay before a rejected event comes again (10s)
#   MAX_EVENTS               exit after this many events (0: run until stopped)
#   CHRONOSHUB_API_TOKEN     bearer token, only for a non-loopback API
set -u

addr=${CHRONOSHUB_HTTP_ADDR:-127.0.0.1:50052}
sub=${CHRONOSHUB_SUBSCRIPTION:-example-curl}
types=${CHRONOSHUB_EVENT_TYPES-manuscript.>}
reject_type=${REJECT_TYPE:-}
delay=${REDELIVER_DELAY:-10s}
max=${MAX_EVENTS:-0}
base="http://$addr"

# Each filter becomes an eventTypes query parameter; ">" must be escaped.
query="subscription=$sub"
old_ifs=$IFS; IFS=,
for t in $types; do
	[ -n "$t" ] && query="$query&eventTypes=$(printf '%s' "$t" | sed 's/>/%3E/g; s/\*/%2A/g')"
done
IFS=$old_ifs

log() { printf 'consume.sh: %s\n' "$*" >&2; }

# curl_api runs curl with the bearer token header when one is set.
curl_api() {
	if [ -n "${CHRONOSHUB_API_TOKEN:-}" ]; then
		curl -H "Authorization: Bearer $CHRONOSHUB_API_TOKEN" "$@"
	else
		curl "$@"
	fi
}

fifo_dir=$(mktemp -d)
fifo=$fifo_dir/stream
mkfifo "$fifo"
curl_pid=
cleanup() { [ -n "$curl_pid" ] && kill "$curl_pid" 2>/dev/null; rm -rf "$fifo_dir"; }
trap 'cleanup; log stopping; exit 0' INT TERM
trap cleanup EXIT

# An event line is {"result":{"event":{"id":…,"type":…,"payload":…,"signedAt":…,
# "receivedAt":…,"attempt":N,…}}}: fields in proto order, payload compacted.
# The payload may hold any keys, so each field is taken by its position.
prefix='^{"result": *{"event": *{"id": *"\([^"]*\)", *"type": *"\([^"]*\)", *"payload": *'

handled=0 failures=0
while :; do
	curl_api -sS -N "$base/v1/events:stream?$query" >"$fifo" &
	curl_pid=$!
	log "streaming subscription $sub, types $types"
	received=0 done=
	while IFS= read -r line; do
		case $line in
		'{"result":{}}') continue ;; # a heartbeat, every 15 s while the stream is idle
		'{"result"'*) ;;
		*) log "stream: $line"; break ;; # {"error":…}: reconnect
		esac
		id=$(printf '%s\n' "$line" | sed -n "s/$prefix.*/\1/p")
		type=$(printf '%s\n' "$line" | sed -n "s/$prefix.*/\2/p")
		payload=$(printf '%s\n' "$line" | sed -n "s/$prefix\(.*\), *\"signedAt\".*/\3/p")
		attempt=$(printf '%s\n' "$line" | sed -n 's/.*"attempt": *\([0-9]*\).*/\1/p')
		received=$((received + 1))

		# The business logic: only JSON objects, and not $REJECT_TYPE.
		action=ack
		case $payload in '{'*) ;; *) action=reject ;; esac
		[ -n "$reject_type" ] && [ "$type" = "$reject_type" ] && action=reject
		printf '{"id":"%s","type":"%s","attempt":%s,"payload":%s,"action":"%s"}\n' \
			"$id" "$type" "${attempt:-0}" "${payload:-null}" "$action"

		if [ "$action" = reject ]; then
			log "rejecting $id ($type, attempt $attempt)"
			body="{\"subscription\":\"$sub\",\"eventIds\":[\"$id\"],\"reject\":true,\"redeliverDelay\":\"$delay\"}"
		else
			body="{\"subscription\":\"$sub\",\"eventIds\":[\"$id\"]}"
		fi
		# An event not settled comes back after its ack deadline: at least once.
		if ! resp=$(curl_api -sS -f -m 10 -X POST "$base/v1/events:ack" -H 'Content-Type: application/json' -d "$body"); then
			log "ack $id failed; reconnecting"
			break
		fi
		case $resp in *'"unknownEventIds"'*) log "$id was no longer held by this stream; it will come again" ;; esac

		handled=$((handled + 1))
		if [ "$max" -gt 0 ] && [ "$handled" -ge "$max" ]; then
			done=1
			break
		fi
	done <"$fifo"
	kill "$curl_pid" 2>/dev/null
	wait "$curl_pid" 2>/dev/null
	curl_pid=
	[ -n "$done" ] && exit 0

	# Reconnect with exponential backoff (1 s doubling to 32 s) and jitter.
	[ "$received" -gt 0 ] && failures=0
	ceiling=$((1 << (failures < 5 ? failures : 5)))
	jitter=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
	wait_s=$((ceiling / 2 + jitter % (ceiling / 2 + 1)))
	[ "$wait_s" -lt 1 ] && wait_s=1
	failures=$((failures + 1))
	log "stream ended; reconnecting in ${wait_s}s"
	sleep "$wait_s" &
	wait $! # unlike a foreground sleep, wait lets the INT/TERM trap run at once
done
