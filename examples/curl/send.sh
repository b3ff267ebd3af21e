#!/bin/sh
# send.sh: send one event to ChronosHub through chronoshub-sidecar's REST API
# (POST /v1/events:send) and print ChronosHub's event id on stdout.
#
#   examples/curl/send.sh [TYPE [PAYLOAD [IDEMPOTENCY_KEY]]]
#
# TYPE defaults to manuscript.submitted, PAYLOAD (a JSON value) to a sample,
# and IDEMPOTENCY_KEY to a new random key. The HTTP status says what to do:
#   200        accepted: the body has eventId.
#   400        code 3 (INVALID_ARGUMENT): the event is wrong; fix it, do not retry.
#              code 9 (FAILED_PRECONDITION): the sidecar's credentials or the
#              ChronosHub account need an operator; do not retry.
#   409        ALREADY_EXISTS: the key was used for a different event.
#   429, 503,  transient (or no answer at all): retried with exponential backoff
#   504        and the SAME idempotency key, so that a retry of an event
#              ChronosHub did accept is not sent twice.
#
# CHRONOSHUB_HTTP_ADDR (127.0.0.1:50052) is the sidecar's REST address;
# CHRONOSHUB_API_TOKEN, when set, is sent as a bearer token; ATTEMPTS (5).
set -u

addr=${CHRONOSHUB_HTTP_ADDR:-127.0.0.1:50052}
type=${1:-manuscript.submitted}
payload=${2:-'{"manuscriptId":"M-1","title":"Example"}'}
key=${3:-curl-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
attempts=${ATTEMPTS:-5}

log() { printf 'send.sh: %s\n' "$*" >&2; }

body_file=$(mktemp)
trap 'rm -f "$body_file"' EXIT
body="{\"type\":\"$type\",\"payload\":$payload,\"idempotencyKey\":\"$key\"}"

attempt=1
while :; do
	set -- -sS -o "$body_file" -w '%{http_code}' -m 20 -X POST "http://$addr/v1/events:send" \
		-H 'Content-Type: application/json' -d "$body"
	if [ -n "${CHRONOSHUB_API_TOKEN:-}" ]; then
		code=$(curl -H "Authorization: Bearer $CHRONOSHUB_API_TOKEN" "$@")
	else
		code=$(curl "$@")
	fi
	resp=$(cat "$body_file")
	case $code in
	200)
		log "$type accepted (idempotency key $key)"
		printf '%s\n' "$resp" | sed -n 's/.*"eventId": *"\([^"]*\)".*/\1/p'
		exit 0 ;;
	400)
		case $resp in
		*'"code":9'*) log "the sidecar cannot send (an operator must fix its credentials or the ChronosHub account): $resp" ;;
		*) log "the event is invalid; fix it, retrying will not help: $resp" ;;
		esac
		exit 1 ;;
	409)
		log "idempotency key $key was already used for a different event: $resp"
		exit 1 ;;
	429 | 503 | 504 | 000) ;; # 000: no answer (sidecar down, timeout)
	*)
		log "HTTP $code: $resp"
		exit 1 ;;
	esac
	if [ "$attempt" -ge "$attempts" ]; then
		log "gave up after $attempt attempts (idempotency key $key, safe to retry later): HTTP $code $resp"
		exit 1
	fi
	ceiling=$((1 << (attempt < 4 ? attempt : 4)))
	jitter=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
	wait_s=$((ceiling / 2 + jitter % (ceiling / 2 + 1)))
	log "attempt $attempt: HTTP $code; retrying in ${wait_s}s with the same idempotency key"
	sleep "$wait_s"
	attempt=$((attempt + 1))
done
