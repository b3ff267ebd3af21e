#!/usr/bin/env bash
# examples/run-tests.sh: test every example end to end. Run from the repository
# root (make examples-test). It needs Go, Node 20 and npm; it installs the rest
# (Debian's python3-grpcio, python3-protobuf, protoc and grpc_python_plugin,
# curl, php-cli) when missing, and runs `npm ci` in examples/node and
# examples/php.
#
# 1. regenerates the Python and TypeScript stubs with buf and fails if they
#    differ from the committed ones;
# 2. builds the TypeScript, vets and tests examples/kubernetes (renders its
#    kustomizations with the pinned kustomize and decodes every manifest
#    strictly; kustomize is built in the background while the installs run);
# 3. starts the dev playground (sidecar + ChronosHub emulator, every address
#    127.0.0.1:0) and, for Go, Python, Node and curl, runs the consumer on its
#    own subscription and the sender, asserting that
#    - every triggered manuscript.* event comes out of each consumer and is
#      acked, an event of another type does not (the filter),
#    - an event whose payload is not a JSON object is rejected and redelivered
#      (attempt >= 2),
#    - after the sidecar restarts, each consumer reconnects by itself and
#      receives a new event, and exits 0 on SIGTERM,
#    - --max-events N makes a consumer exit 0 after exactly N events,
#    - the sender's event reaches ChronosHub (GET /_emulator/inbound) exactly
#      once, a repeat with the same idempotency key returns the same event id,
#      the same key with another payload and an invalid payload both fail;
# 4. runs examples/php under PHP's built-in server with `dev --forward-to`
#    (push delivery): a manuscript.submitted event is recorded by the PHP
#    receiver, which verified its Standard Webhooks signature, and its status
#    update reaches ChronosHub exactly once; an event the receiver refuses
#    (422) is dead-lettered at once with the reason "refused"; and every
#    signature the receiver recorded also verifies with the npm
#    standardwebhooks reference library (examples/php/verify.mjs).
set -euo pipefail

fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

[[ -f go.mod && -f buf.yaml && -d examples ]] || fail "run from the repository root"
export DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 NPM_CONFIG_UPDATE_NOTIFIER=false
PY=/usr/bin/python3
BUF=(go tool -modfile=tools/go.mod buf)
start=$SECONDS

# examples/kubernetes renders its kustomizations with `go run` of the
# kustomize pinned in its test. Build it and the test now, in the background,
# while the installs run: on a cold module cache both are downloaded and
# compiled (minutes on 2 cores). The test builds what this does not.
kustomize=$(sed -n 's/^const kustomize = "\(.*\)"$/\1/p' examples/kubernetes/manifests_test.go)
[[ -n $kustomize ]] || fail "no kustomize version in examples/kubernetes/manifests_test.go"
# timeout leads its own process group and passes a kill on to all of it.
GOWORK=off timeout 600 sh -c 'go run "$1" version && cd examples/kubernetes && go test -count=1 -run "^$" ./...' \
	sh "$kustomize" >/dev/null 2>&1 &
kustomize_pid=$!
trap 'kill "$kustomize_pid" 2>/dev/null || true' EXIT

step "install what is missing"
missing=()
for pkg in python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc curl php-cli; do
	dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
	sudo=()
	[[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
	echo "apt-get install ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
(cd examples/node && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
(cd examples/php && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
install_done=$SECONDS

step "regenerate the stubs and check they are committed"
timeout 120 "${BUF[@]}" generate --template examples/python/buf.gen.yaml
timeout 120 "${BUF[@]}" generate --template examples/node/buf.gen.yaml
if ! git diff --exit-code --stat -- examples/python/gen examples/node/gen; then
	fail "examples/python/gen or examples/node/gen is stale: run make generate-examples and commit"
fi
untracked=$(git status --porcelain -- examples/python/gen examples/node/gen)
[[ -z $untracked ]] || fail "generated files not committed (run make generate-examples and commit):
$untracked"
$PY -c 'import sys; sys.path.insert(0, "examples/python/gen"); from chronoshub.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc' ||
	fail "the generated Python stubs do not import"

step "build the TypeScript; vet and test examples/kubernetes"
(cd examples/node && rm -rf dist && timeout 120 ./node_modules/.bin/tsc -p .) || fail "tsc"
go vet ./examples/go/... || fail "go vet ./examples/go/..."
wait "$kustomize_pid" || echo "building $kustomize or the manifest test in the background failed; the test builds them"
(cd examples/kubernetes && timeout 600 go vet ./... && timeout 600 go test -count=1 ./...) || fail "examples/kubernetes"

step "build the sidecar and the Go examples"
tmp=$(mktemp -d)
dev_pid=
pids=()
cleanup() {
	local p i
	for p in "${pids[@]}" $dev_pid; do kill "$p" 2>/dev/null || true; done
	for ((i = 0; i < 50; i++)); do
		jobs -pr | grep -q . || break
		sleep 0.1
	done
	for p in $(jobs -pr); do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/chronoshub-sidecar" ./sidecar/cmd/chronoshub-sidecar
go build -o "$tmp/go-consumer" ./examples/go/consumer
go build -o "$tmp/go-sender" ./examples/go/sender

# check.py FILE [--ack IDS] [--reject ID] [--absent ID] [--count N]: exit 0
# when the consumer output FILE shows it all; print what is missing otherwise.
cat >"$tmp/check.py" <<'PYEOF'
import argparse, json, sys
p = argparse.ArgumentParser()
p.add_argument("file")
p.add_argument("--ack", default="")
p.add_argument("--reject", default="")
p.add_argument("--absent", default="")
p.add_argument("--count", type=int)
a = p.parse_args()
events, problems = [], []
for n, line in enumerate(open(a.file, encoding="utf-8"), 1):
    try:
        ev = json.loads(line)
        assert isinstance(ev, dict) and {"id", "type", "attempt", "payload", "action"} <= ev.keys()
        events.append(ev)
    except Exception:
        problems.append(f"line {n} is not an event line: {line!r}")
for i in filter(None, a.ack.split(",")):
    if not any(e["id"] == i and e["action"] == "ack" for e in events):
        problems.append(f"{i} not received and acked")
if a.reject:
    attempts = sorted(e["attempt"] for e in events if e["id"] == a.reject and e["action"] == "reject")
    if not attempts or attempts[-1] < 2:
        problems.append(f"{a.reject} not rejected and redelivered (attempts seen: {attempts})")
if a.absent and any(e["id"] == a.absent for e in events):
    problems.append(f"{a.absent} received although the filter excludes its type")
if a.count is not None and len(events) != a.count:
    problems.append(f"{len(events)} events, want {a.count}")
print("; ".join(problems))
sys.exit(1 if problems else 0)
PYEOF

uuid() { cat /proc/sys/kernel/random/uuid; }
field() { $PY -c 'import json, sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }

# start_dev [ADDR FLAGS...]: start the playground, wait until it is ready,
# and set WEBHOOK_URL, GRPC, HTTP and EMULATOR from what it printed.
start_dev() {
	"$tmp/chronoshub-sidecar" dev --dir "$tmp/dev" --emulator-retry-base 200ms "$@" \
		>"$tmp/dev.out" 2>>"$tmp/dev.err" &
	dev_pid=$!
	local i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$dev_pid" 2>/dev/null || { tail -20 "$tmp/dev.err" >&2; fail "dev exited"; }
		if grep -qs '"msg":"ready"' "$tmp/dev.err" && grep -qs '^  emulator ' "$tmp/dev.out"; then
			ready=$(grep '"msg":"ready"' "$tmp/dev.err" | tail -1)
			GRPC=$(field grpc_addr <<<"$ready")
			HTTP=$(field http_addr <<<"$ready")
			WEBHOOK_URL=$(sed -n 's/^  webhook   \(https:[^ ]*\).*/\1/p' "$tmp/dev.out")
			EMULATOR=$(sed -n 's/^  emulator  \(http:[^ ]*\).*/\1/p' "$tmp/dev.out")
			[[ -n $GRPC && -n $HTTP && -n $WEBHOOK_URL && -n $EMULATOR ]] || fail "cannot read the addresses from dev's output"
			return
		fi
		sleep 0.1
	done
	tail -20 "$tmp/dev.err" >&2
	fail "dev not ready within 30s"
}

stop_dev() {
	kill -TERM "$dev_pid"
	local i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$dev_pid" 2>/dev/null || { wait "$dev_pid" || true; dev_pid=; return; }
		sleep 0.1
	done
	fail "dev did not stop within 30s of SIGTERM"
}

# deliver TYPE PAYLOAD EVENT_ID: the emulator posts a signed webhook.
deliver() {
	curl -sS -f -m 10 -o /dev/null -X POST "$EMULATOR/_emulator/deliveries" -H 'Content-Type: application/json' \
		-d "{\"url\":\"$WEBHOOK_URL\",\"event_type\":\"$1\",\"payload\":$2,\"event_id\":\"$3\"}" ||
		fail "emulator delivery of $1 $3"
}

langs=(go python node curl)

# start_consumer LANG SUBSCRIPTION OUT [MAX_EVENTS]: in the background; sets
# consumer_pid. The background case runs in a subshell: exec makes its pid the
# consumer's, so that signals reach the consumer.
start_consumer() {
	local lang=$1 sub=$2 out=$3 max=${4:-0}
	case $lang in
	go) exec "$tmp/go-consumer" -addr "$GRPC" -subscription "$sub" -types 'manuscript.>' -redeliver-delay 1s -max-events "$max" ;;
	python) exec $PY examples/python/consumer.py --addr "$GRPC" --subscription "$sub" --types 'manuscript.>' --redeliver-delay 1 --max-events "$max" ;;
	node) exec node examples/node/dist/consumer.js --addr "$GRPC" --subscription "$sub" --types 'manuscript.>' --redeliver-delay 1 --max-events "$max" ;;
	curl) CHRONOSHUB_HTTP_ADDR=$HTTP CHRONOSHUB_SUBSCRIPTION=$sub CHRONOSHUB_EVENT_TYPES='manuscript.>' \
		REDELIVER_DELAY=1s MAX_EVENTS=$max exec sh examples/curl/consume.sh ;;
	esac >"$out" 2>"$out.err" </dev/null &
	consumer_pid=$!
}

# send LANG TYPE PAYLOAD KEY: the sender; prints the event id.
send() {
	local lang=$1
	shift
	case $lang in
	go) timeout 60 "$tmp/go-sender" -addr "$GRPC" -attempts 3 -type "$1" -payload "$2" -idempotency-key "$3" ;;
	python) timeout 60 $PY examples/python/sender.py --addr "$GRPC" --attempts 3 --type "$1" --payload "$2" --idempotency-key "$3" ;;
	node) timeout 60 node examples/node/dist/sender.js --addr "$GRPC" --attempts 3 --type "$1" --payload "$2" --idempotency-key "$3" ;;
	curl) CHRONOSHUB_HTTP_ADDR=$HTTP ATTEMPTS=3 timeout 60 sh examples/curl/send.sh "$1" "$2" "$3" ;;
	esac </dev/null 2>>"$tmp/send.err"
}

# await LANG OUT CHECK-ARGS...: wait up to 60s for check.py to pass.
await() {
	local lang=$1 out=$2 i
	shift 2
	for ((i = 0; i < 120; i++)); do
		$PY "$tmp/check.py" "$out" "$@" >/dev/null && return
		sleep 0.5
	done
	echo "--- $lang consumer stdout:" >&2; cat "$out" >&2
	echo "--- $lang consumer stderr:" >&2; tail -20 "$out.err" >&2
	fail "$lang consumer: $($PY "$tmp/check.py" "$out" "$@")"
}

step "end to end against the dev playground"
start_dev --webhook-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
	--admin-addr 127.0.0.1:0 --emulator-addr 127.0.0.1:0
echo "dev: gRPC $GRPC, REST $HTTP, webhook $WEBHOOK_URL, emulator $EMULATOR"
addr_flags=(--webhook-addr "${WEBHOOK_URL#https://}" --grpc-addr "$GRPC" --http-addr "$HTTP"
	--admin-addr "$(field admin_addr <<<"$ready")" --emulator-addr "${EMULATOR#http://}")
addr_flags[1]=${addr_flags[1]%%/*}

declare -A consumer
for lang in "${langs[@]}"; do
	start_consumer "$lang" "e2e-$lang" "$tmp/$lang.out"
	consumer[$lang]=$consumer_pid
	pids+=("$consumer_pid")
done

good1=$(uuid) good2=$(uuid) bad=$(uuid) other=$(uuid) good3=$(uuid)
deliver manuscript.submitted '{"manuscriptId":"E2E-1","title":"Één 𝔸"}' "$good1"
deliver manuscript.status.updated '"not an object"' "$bad"
deliver journal.created '{"journalId":"J-1"}' "$other"
deliver manuscript.submitted "$(cat examples/events/manuscript.submitted.json)" "$good2"
for lang in "${langs[@]}"; do
	await "$lang" "$tmp/$lang.out" --ack "$good1,$good2" --reject "$bad"
	echo "ok   $lang consumer: received and acked 2 events, rejected 1 and got it again"
done

for lang in "${langs[@]}"; do
	key="e2e-$lang-$(uuid)"
	payload="{\"manuscriptId\":\"E2E-$lang\",\"status\":\"accepted\"}"
	id=$(send "$lang" manuscript.status.updated "$payload" "$key") || { tail -5 "$tmp/send.err" >&2; fail "$lang sender exited with an error"; }
	[[ -n $id ]] || fail "$lang sender printed no event id"
	again=$(send "$lang" manuscript.status.updated "$payload" "$key") || { tail -5 "$tmp/send.err" >&2; fail "$lang sender, same key again, exited with an error"; }
	[[ $again == "$id" ]] || fail "$lang sender: same idempotency key gave event id $again, want $id"
	: >"$tmp/send.err"
	if send "$lang" manuscript.status.updated '{"manuscriptId":"other"}' "$key" >/dev/null; then
		fail "$lang sender: the same key for a different event succeeded"
	fi
	grep -qi 'already used' "$tmp/send.err" || fail "$lang sender: no ALREADY_EXISTS message: $(cat "$tmp/send.err")"
	: >"$tmp/send.err"
	if send "$lang" manuscript.status.updated 'nope' "e2e-bad-$lang" >/dev/null; then
		fail "$lang sender: an invalid payload succeeded"
	fi
	grep -qi 'invalid' "$tmp/send.err" || fail "$lang sender: no INVALID_ARGUMENT message: $(cat "$tmp/send.err")"
	curl -sS -f -m 10 "$EMULATOR/_emulator/inbound" >"$tmp/inbound.json" || fail "GET /_emulator/inbound"
	$PY - "$tmp/inbound.json" "$id" "E2E-$lang" <<'PYEOF' || fail "$lang sender: event $id not in /_emulator/inbound exactly once"
import json, sys
got = [e for e in json.load(open(sys.argv[1])) if e["event_id"] == sys.argv[2]]
sys.exit(0 if len(got) == 1 and got[0]["event_type"] == "manuscript.status.updated"
         and got[0]["payload"]["manuscriptId"] == sys.argv[3] else 1)
PYEOF
	echo "ok   $lang sender: event $id reached ChronosHub once; same key is idempotent; conflicts and invalid events fail"
done

step "restart the sidecar: consumers reconnect by themselves"
stop_dev
start_dev "${addr_flags[@]}"
deliver manuscript.submitted '{"manuscriptId":"E2E-3"}' "$good3"
for lang in "${langs[@]}"; do
	await "$lang" "$tmp/$lang.out" --ack "$good1,$good2,$good3" --reject "$bad" --absent "$other"
	kill -TERM "${consumer[$lang]}"
	for ((i = 0; i < 100; i++)); do kill -0 "${consumer[$lang]}" 2>/dev/null || break; sleep 0.1; done
	kill -0 "${consumer[$lang]}" 2>/dev/null && fail "$lang consumer did not exit within 10s of SIGTERM"
	rc=0
	wait "${consumer[$lang]}" || rc=$?
	((rc == 0)) || fail "$lang consumer exited $rc on SIGTERM"
	echo "ok   $lang consumer: reconnected after the restart, never saw the filtered-out type, exited 0 on SIGTERM"
done

step "--max-events"
for lang in "${langs[@]}"; do
	start_consumer "$lang" "e2e-max-$lang" "$tmp/$lang-max.out" 2
	pids+=("$consumer_pid")
	for ((i = 0; i < 600; i++)); do kill -0 "$consumer_pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$consumer_pid" 2>/dev/null && { cat "$tmp/$lang-max.out.err" >&2; fail "$lang consumer --max-events 2 still running after 60s"; }
	rc=0
	wait "$consumer_pid" || rc=$?
	((rc == 0)) || { cat "$tmp/$lang-max.out.err" >&2; fail "$lang consumer --max-events 2 exited $rc"; }
	$PY "$tmp/check.py" "$tmp/$lang-max.out" --count 2 >/dev/null || fail "$lang consumer --max-events 2: $($PY "$tmp/check.py" "$tmp/$lang-max.out" --count 2)"
	echo "ok   $lang consumer: exited 0 after 2 events"
done
stop_dev

step "PHP push receiver (dev --forward-to) and the standardwebhooks reference library"
php -l examples/php/chronoshub.php >/dev/null || fail "php -l examples/php/chronoshub.php"
# dev keeps the push signing secret in its --dir: give it one, so that the
# PHP server, which must listen before dev knows its address, has it too.
push_secret="whsec_$(head -c 32 /dev/urandom | base64 -w0)"
printf '%s\n' "$push_secret" >"$tmp/dev/push-secret"
: >"$tmp/php.out"
: >"$tmp/php.err"
CHRONOSHUB_PUSH_SECRET=$push_secret CHRONOSHUB_HTTP_ADDR=$HTTP JOURNAL_FILE=$tmp/journal.ndjson \
	php -S 127.0.0.1:0 -t examples/php >"$tmp/php.out" 2>"$tmp/php.err" </dev/null &
php_pid=$!
pids+=("$php_pid")
php_url=
for ((i = 0; i < 100; i++)); do
	php_url=$(sed -n 's/.*Development Server (\(http:[^)]*\)) started.*/\1/p' "$tmp/php.out" "$tmp/php.err" | head -1)
	[[ -n $php_url ]] && break
	kill -0 "$php_pid" 2>/dev/null || { cat "$tmp/php.err" >&2; fail "php -S exited"; }
	sleep 0.1
done
[[ -n $php_url ]] || fail "php -S printed no address within 10s"
start_dev "${addr_flags[@]}" --forward-to "$php_url/chronoshub.php"
grep -q "POSTed to $php_url/chronoshub.php" "$tmp/dev.out" || fail "dev's banner does not show the push delivery"
submitted=$(uuid) refused=$(uuid)
deliver manuscript.submitted "$(cat examples/events/manuscript.submitted.json)" "$submitted"
deliver manuscript.submitted '{"title":"no manuscriptId"}' "$refused"
for ((i = 0; i < 120; i++)); do
	grep -qs "\"event_id\":\"$submitted\"" "$tmp/journal.ndjson" &&
		curl -sS -f -m 10 "http://$HTTP/v1/subscriptions/forward/dead-letters" 2>/dev/null | grep -q "$refused" && break
	sleep 0.5
done
grep -qs "\"event_id\":\"$submitted\"" "$tmp/journal.ndjson" || { tail -20 "$tmp/php.err" >&2; fail "the PHP receiver did not record $submitted"; }
curl -sS -f -m 10 "http://$HTTP/v1/subscriptions/forward/dead-letters" >"$tmp/php-dead.json" || fail "GET the dead letters of forward"
$PY - "$tmp/php-dead.json" "$refused" <<'PYEOF' || fail "event $refused not dead-lettered as refused (HTTP 422): $(cat "$tmp/php-dead.json")"
import json, sys
dead = [d for d in json.load(open(sys.argv[1])).get("deadLetters", []) if d["event"]["id"] == sys.argv[2]]
sys.exit(0 if len(dead) == 1 and dead[0].get("reason") == "refused" and dead[0].get("detail") == "HTTP 422" else 1)
PYEOF
curl -sS -f -m 10 "$EMULATOR/_emulator/inbound" >"$tmp/inbound.json" || fail "GET /_emulator/inbound"
# The forward subscription also receives the events earlier steps delivered
# (it starts at the oldest one): follow this event's own status update, by
# the ChronosHub event id the receiver recorded for it.
$PY - "$tmp/inbound.json" "$tmp/journal.ndjson" "$submitted" "$(sed -n 's/.*"manuscriptId": *"\([^"]*\)".*/\1/p' examples/events/manuscript.submitted.json)" <<'PYEOF' || { tail -20 "$tmp/php.err" >&2; fail "the PHP receiver's status update did not reach ChronosHub exactly once: $(cat "$tmp/inbound.json")"; }
import json, sys
inbound, journal, event_id, manuscript = sys.argv[1:]
sent = {json.loads(l)["status_event_id"] for l in open(journal) if l.strip() and json.loads(l)["event_id"] == event_id}
got = [e for e in json.load(open(inbound)) if e["event_id"] in sent and e["event_type"] == "manuscript.status.updated"
       and e["payload"] == {"manuscriptId": manuscript, "status": "received"}]
sys.exit(0 if len(sent) == 1 and len(got) == 1 else 1)
PYEOF
code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -X POST "$php_url/chronoshub.php" \
	-H "webhook-id: forged" -H "webhook-timestamp: $(date +%s)" -H "webhook-signature: v1,$(head -c 32 /dev/urandom | base64 -w0)" \
	-H 'Chronoshub-Event-Type: manuscript.submitted' -d '{"manuscriptId":"FORGED"}') || fail "POST to the PHP receiver"
[[ $code == 401 ]] || fail "the PHP receiver answered $code to a forged signature, want 401"
echo "ok   php receiver: verified the signature, recorded the manuscript, sent its status to ChronosHub once; a refused event is a dead letter; a forged signature gets 401"
CHRONOSHUB_PUSH_SECRET=$push_secret timeout 60 node examples/php/verify.mjs "$tmp/journal.ndjson" || fail "standardwebhooks (npm) refuses the sidecar's push signatures"
echo "ok   standardwebhooks (npm) verifies the sidecar's push signatures"
stop_dev

printf '\nexamples: all passed in %ds (%ds after installs)\n' $((SECONDS - start)) $((SECONDS - install_done))
