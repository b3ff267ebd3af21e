package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/credentials"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
)

const clientUsage = `Usage: chronoshub-sidecar client <command> [flags] [arguments]

Talks to a running sidecar's app-facing gRPC API, so that no other tool is
needed to try it. Every command prints JSON, one object per line, payloads
as JSON (not base64).

Commands:
  stream                      print events as they arrive (--ack settles each after printing)
  ack <event id>…             acknowledge events: done, not offered again
  reject <event id>…          reject events: offered again after --redeliver-delay
  send                        send an event to ChronosHub through the sidecar
  sent <idempotency key>      the state of an event sent with that key
  dead-letters list           the events a subscription gave up on
  dead-letters replay <id>…   offer dead letters again (--all for every one)
  replay <id>… | --since t    offer past events of the log again to a subscription
  subscriptions list          every subscription: filter, position, backlog, unacked, dead letters
  subscriptions get           one subscription (--subscription)
  subscriptions update        set a subscription's filter (--event-types; narrowing moves
                              pending events it now excludes to the dead letters)
  subscriptions delete        remove a subscription and its position

Every command takes:
  --addr address      the sidecar's gRPC listener: host:port or unix:///path
                      (default 127.0.0.1:50051, or $CHRONOSHUB_GRPC_ADDR)
  --token-file path   a file holding the API's bearer token; without one,
                      $CHRONOSHUB_API_TOKEN or the file
                      $CHRONOSHUB_API_TOKEN_FILE names is sent when set
  --timeout duration  deadline of a command other than stream (default 30s)

Run "chronoshub-sidecar client <command> --help" for the flags of each.
`

// defaultClientAddr is where the sidecar's gRPC listener is by default.
const defaultClientAddr = "127.0.0.1:50051"

// clientCommand is one command of "client".
type clientCommand struct {
	usage string
	// flags adds the command's own flags to fs; run is called after parsing
	// with the connected API and the remaining arguments.
	flags func(fs *flag.FlagSet) func(ctx context.Context, api *clientAPI, args []string) error
	// streaming commands get no --timeout deadline.
	streaming bool
}

// clientAPI is what a command works with: the generated client, the
// context that carries the token, and where to print.
type clientAPI struct {
	events sidecarv1.EventServiceClient
	stdout io.Writer
	// stderr receives notes for people, such as a subscription that a
	// stream created.
	stderr io.Writer
	// timeout is --timeout, for commands that bound each of their calls
	// rather than the whole command.
	timeout time.Duration
}

func clientCommands() map[string]clientCommand {
	return map[string]clientCommand{
		"stream":               {usage: streamUsage, flags: streamFlags, streaming: true},
		"ack":                  {usage: ackUsage, flags: ackFlags(false)},
		"reject":               {usage: rejectUsage, flags: ackFlags(true)},
		"send":                 {usage: sendUsage, flags: sendFlags},
		"sent":                 {usage: sentUsage, flags: sentFlags},
		"dead-letters list":    {usage: deadLettersListUsage, flags: deadLettersListFlags},
		"dead-letters replay":  {usage: deadLettersReplayUsage, flags: deadLettersReplayFlags},
		"replay":               {usage: replayUsage, flags: replayFlags, streaming: true},
		"subscriptions list":   {usage: subscriptionsListUsage, flags: subscriptionsListFlags},
		"subscriptions get":    {usage: subscriptionsGetUsage, flags: subscriptionFlags(subscriptionGet)},
		"subscriptions update": {usage: subscriptionsUpdateUsage, flags: subscriptionFlags(subscriptionUpdate)},
		"subscriptions delete": {usage: subscriptionsDeleteUsage, flags: subscriptionFlags(subscriptionDelete)},
	}
}

// runClient runs one client command against a sidecar.
func runClient(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, clientUsage)
		return errors.New("client: missing command")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, clientUsage)
		return flag.ErrHelp
	case "dead-letters":
		if len(rest) == 0 || (rest[0] != "list" && rest[0] != "replay") {
			if len(rest) > 0 && slices.Contains([]string{"-h", "-help", "--help", "help"}, rest[0]) {
				fmt.Fprint(stdout, deadLettersListUsage+"\n"+deadLettersReplayUsage)
				return flag.ErrHelp
			}
			return errors.New(`client dead-letters: want "list" or "replay" (see chronoshub-sidecar client --help)`)
		}
		name, rest = name+" "+rest[0], rest[1:]
	case "subscriptions":
		if len(rest) == 0 || !slices.Contains([]string{"list", "get", "update", "delete"}, rest[0]) {
			if len(rest) > 0 && slices.Contains([]string{"-h", "-help", "--help", "help"}, rest[0]) {
				fmt.Fprint(stdout, subscriptionsListUsage+"\n"+subscriptionsGetUsage+"\n"+subscriptionsUpdateUsage+"\n"+subscriptionsDeleteUsage)
				return flag.ErrHelp
			}
			return errors.New(`client subscriptions: want "list", "get", "update" or "delete" (see chronoshub-sidecar client --help)`)
		}
		name, rest = name+" "+rest[0], rest[1:]
	}
	cmd, ok := clientCommands()[name]
	if !ok {
		fmt.Fprint(stderr, clientUsage)
		return fmt.Errorf("client: unknown command %q", name)
	}

	fs := newFlagSet("client " + name)
	addr := fs.String("addr", "", "the sidecar's gRPC listener: host:port or unix:///path (default 127.0.0.1:50051, or $CHRONOSHUB_GRPC_ADDR)")
	tokenFile := fs.String("token-file", "", "a file holding the API's bearer token (instead of $CHRONOSHUB_API_TOKEN or $CHRONOSHUB_API_TOKEN_FILE)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline of the command (not of stream)")
	runCmd := cmd.flags(fs)
	if err := parseFlags(fs, cmd.usage, rest, stdout); err != nil {
		return err
	}
	if *addr == "" {
		if *addr = getenv("CHRONOSHUB_GRPC_ADDR"); *addr == "" {
			*addr = defaultClientAddr
		}
	}
	token, err := clientToken(*tokenFile, getenv("CHRONOSHUB_API_TOKEN"), getenv("CHRONOSHUB_API_TOKEN_FILE"))
	if err != nil {
		return fmt.Errorf("client %s: %w", name, err)
	}
	conn, err := dialAPI(*addr)
	if err != nil {
		return fmt.Errorf("client %s: --addr: %w", name, err)
	}
	defer conn.Close()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	if !cmd.streaming {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	api := &clientAPI{events: sidecarv1.NewEventServiceClient(conn), stdout: stdout, stderr: stderr, timeout: *timeout}
	if err := runCmd(ctx, api, fs.Args()); err != nil {
		return fmt.Errorf("client %s: %w", name, describeRPCError(err))
	}
	return nil
}

// clientToken returns the bearer token from --token-file, or else from
// CHRONOSHUB_API_TOKEN or the file CHRONOSHUB_API_TOKEN_FILE names (the
// sidecar's own variables, so that the client run in the sidecar's
// container finds the token); "" when none is given (a loopback sidecar
// needs none). The token is never a flag: flags show in ps and shell history.
func clientToken(flagFile, envValue, envFile string) (string, error) {
	switch {
	case flagFile != "":
		src, err := credentials.NewFile(config.APITokenName, flagFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		return src.Reveal(), nil
	case envValue != "" && envFile != "":
		return "", errors.New("CHRONOSHUB_API_TOKEN and CHRONOSHUB_API_TOKEN_FILE are both set: set one, or give --token-file")
	case envFile != "":
		src, err := credentials.NewFile(config.APITokenName, envFile)
		if err != nil {
			return "", fmt.Errorf("CHRONOSHUB_API_TOKEN_FILE: %w", err)
		}
		return src.Reveal(), nil
	}
	return strings.TrimSpace(envValue), nil
}

// dialAPI returns a client connection to the app-facing gRPC address, in
// the syntax of CHRONOSHUB_GRPC_ADDR. The connection is plaintext: the API
// listens on loopback or a unix socket. It receives messages of any size the
// sidecar sends (the sidecar caps none: an event is as large as the webhook
// body limit allows, up to 64 MiB, and a dead-letter page holds at least one
// event), where grpc-go's default of 4 MiB would fail with
// ResourceExhausted on a 5 MiB event.
func dialAPI(addr string) (*grpc.ClientConn, error) {
	network, address, err := config.ParseListenAddr(addr)
	if err != nil {
		return nil, err
	}
	target := "passthrough:///" + address
	if network == "unix" {
		target = "unix://" + address
	}
	return grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
}

// describeRPCError renders a gRPC status with its details (field
// violations, error reason, retry delay) on several lines; other errors are
// returned as they are.
func describeRPCError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", st.Code(), st.Message())
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fmt.Fprintf(&b, "\n  field %s: %s", v.GetField(), v.GetDescription())
			}
		case *errdetails.ErrorInfo:
			fmt.Fprintf(&b, "\n  reason: %s", d.GetReason())
			if d.GetDomain() != "" {
				fmt.Fprintf(&b, " (%s)", d.GetDomain())
			}
			keys := make([]string, 0, len(d.GetMetadata()))
			for k := range d.GetMetadata() {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "\n  %s: %s", k, d.GetMetadata()[k])
			}
		case *errdetails.RetryInfo:
			fmt.Fprintf(&b, "\n  retry after: %s", d.GetRetryDelay().AsDuration())
		case proto.Message:
			j, _ := protojson.Marshal(d)
			fmt.Fprintf(&b, "\n  %s", j)
		case error:
			fmt.Fprintf(&b, "\n  (undecodable detail: %v)", d)
		}
	}
	return &rpcError{text: b.String(), err: err}
}

// rpcError is a gRPC error described for people; it unwraps to the status
// error.
type rpcError struct {
	text string
	err  error
}

func (e *rpcError) Error() string { return e.text }
func (e *rpcError) Unwrap() error { return e.err }

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *rpcError) GRPCStatus() *status.Status { return status.Convert(e.err) }

// printJSON writes v as one compact JSON line.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printProto writes m as one compact protojson line (the REST API's field
// names).
func printProto(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{EmitDefaultValues: true}.Marshal(m)
	if err != nil {
		return err
	}
	// protojson's output is not stable by design; compact it for one line.
	var v json.RawMessage = b
	return printJSON(w, v)
}

// splitList splits a comma-separated flag value, dropping empty parts.
func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// eventLine is how stream and dead-letters list print an event: every field
// of Event (and of DeadLetter), with the payload as JSON.
type eventLine struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Attempt    uint32 `json:"attempt"`
	Sequence   uint64 `json:"sequence"`
	SignedAt   string `json:"signedAt,omitempty"`
	ReceivedAt string `json:"receivedAt,omitempty"`
	// Payload is the payload when it is JSON, as JSON.
	Payload json.RawMessage `json:"payload,omitempty"`
	// PayloadBase64 holds a payload that is not JSON.
	PayloadBase64 string `json:"payloadBase64,omitempty"`
	// Traceparent and Tracestate are the event's trace context, when the
	// sidecar has one.
	Traceparent string `json:"traceparent,omitempty"`
	Tracestate  string `json:"tracestate,omitempty"`
	// DeadAt, Reason and Detail are set for a dead letter (Detail: what a
	// push subscription's app last answered).
	DeadAt string `json:"deadAt,omitempty"`
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Replay is set for an event offered again on purpose.
	Replay bool `json:"replay,omitempty"`
}

func newEventLine(e *sidecarv1.Event) eventLine {
	l := eventLine{
		ID: e.GetId(), Type: e.GetType(), Attempt: e.GetAttempt(), Sequence: e.GetSequence(),
		SignedAt: formatTime(e.GetSignedAt()), ReceivedAt: formatTime(e.GetReceivedAt()),
		Traceparent: e.GetTraceparent(), Tracestate: e.GetTracestate(),
		Replay: e.GetReplay(),
	}
	if json.Valid(e.GetPayload()) {
		l.Payload = e.GetPayload()
	} else if len(e.GetPayload()) > 0 {
		l.PayloadBase64 = base64.StdEncoding.EncodeToString(e.GetPayload())
	}
	return l
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

const streamUsage = `Usage: chronoshub-sidecar client stream --subscription name [flags]

Opens StreamEvents and prints one JSON line per event as it arrives:
{"id","type","attempt","sequence","signedAt","receivedAt","payload"}, the
payload as JSON (payloadBase64 when it is not JSON), and "traceparent" and
"tracestate" when the event has a trace context. Events are not
acknowledged unless --ack is given: then each one is acknowledged after it
is printed. With --max-events N the sidecar delivers at most N events on the
stream and holds at most N at once (--max-in-flight is lowered to N), so
that no event is taken, and charged an attempt, that will not be printed. When the stream creates the subscription
(a name seen for the first time), a note on stderr says so and how many
stored events it replays. Ctrl-C stops.

Flags:
`

func streamFlags(fs *flag.FlagSet) func(context.Context, *clientAPI, []string) error {
	sub := fs.String("subscription", "", "the subscription (required): streams of one subscription share its events")
	types := fs.String("event-types", "", "comma-separated event types or patterns (manuscript.*, manuscript.>); empty for all")
	ack := fs.Bool("ack", false, "acknowledge each event after printing it")
	start := fs.String("start", "", `where a new subscription starts: "oldest", "now", or an RFC 3339 time; empty is the sidecar's default`)
	maxInFlight := fs.Uint("max-in-flight", 0, "most unacknowledged events on this stream; 0 is the sidecar's default")
	maxEvents := fs.Int("max-events", 0, "exit after printing this many events (0: until stopped); the stream then holds at most this many at once")
	return func(ctx context.Context, api *clientAPI, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unexpected arguments %q", args)
		}
		if *sub == "" {
			return errors.New("--subscription is required")
		}
		if *maxEvents < 0 {
			return fmt.Errorf("--max-events %d: want 0 or more", *maxEvents)
		}
		req := &sidecarv1.StreamEventsRequest{Subscription: *sub, EventTypes: splitList(*types), MaxInFlight: uint32(streamWindow(*maxEvents, *maxInFlight)), MaxEvents: uint32(*maxEvents)}
		switch *start {
		case "":
		case "oldest":
			req.StartPosition = sidecarv1.StartPosition_START_POSITION_OLDEST
		case "now":
			req.StartPosition = sidecarv1.StartPosition_START_POSITION_NOW
		default:
			t, err := time.Parse(time.RFC3339, *start)
			if err != nil {
				return fmt.Errorf(`--start %q: want "oldest", "now" or an RFC 3339 time such as 2026-01-02T15:04:05Z`, *start)
			}
			req.StartPosition, req.StartTime = sidecarv1.StartPosition_START_POSITION_TIME, timestamppb.New(t)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := api.events.StreamEvents(ctx, req)
		if err != nil {
			return stopped(ctx, err)
		}
		// The headers arrive once the stream is attached; nil when it was
		// refused, which Recv reports.
		if md, _ := stream.Header(); len(md.Get(grpcapi.HeaderSubscriptionCreated)) > 0 && md.Get(grpcapi.HeaderSubscriptionCreated)[0] == "true" {
			replay := "?"
			if r := md.Get(grpcapi.HeaderReplayEvents); len(r) > 0 {
				replay = r[0]
			}
			fmt.Fprintf(api.stderr, "client stream: created subscription %q, which replays %s stored events; if the name is a typo, delete it: chronoshub-sidecar client subscriptions delete --subscription %s\n", *sub, replay, *sub)
		}
		for n := 0; *maxEvents == 0 || n < *maxEvents; n++ {
			resp, err := stream.Recv()
			switch {
			case err == nil:
			case errors.Is(err, io.EOF):
				return errors.New("the sidecar ended the stream (it is shutting down)")
			default:
				return stopped(ctx, err)
			}
			e := resp.GetEvent()
			if err := printJSON(api.stdout, newEventLine(e)); err != nil {
				return err
			}
			if *ack {
				r, err := api.events.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: *sub, EventIds: []string{e.GetId()}})
				if err != nil {
					return fmt.Errorf("ack %s: %w", e.GetId(), err)
				}
				if len(r.GetUnknownEventIds()) > 0 {
					return fmt.Errorf("ack %s: the sidecar no longer holds it for this stream (its ack wait ran out?)", e.GetId())
				}
			}
		}
		return nil
	}
}

// streamWindow is the max_in_flight of a stream that prints at most
// maxEvents events (0: no limit) and was asked for maxInFlight (0: the
// sidecar's default): never more than it will print, since every event a
// stream holds when it ends has used an attempt.
func streamWindow(maxEvents int, maxInFlight uint) uint {
	if maxEvents > 0 && (maxInFlight == 0 || maxInFlight > uint(maxEvents)) {
		return uint(maxEvents)
	}
	return maxInFlight
}

// stopped returns nil for the error of an RPC cancelled because ctx is
// done (Ctrl-C stops stream, which is not a failure), and err otherwise.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil && status.Code(err) == codes.Canceled {
		return nil
	}
	return err
}

const ackUsage = `Usage: chronoshub-sidecar client ack --subscription name <event id>…

Acknowledges events of the subscription: they are done and not offered
again. Prints {"eventIds":[…],"unknownEventIds":[…]}; unknown ids are not
(or no longer) delivered to this subscription and waiting for an ack. A
subscription that does not exist fails the command (NotFound).

Flags:
`

const rejectUsage = `Usage: chronoshub-sidecar client reject --subscription name [--redeliver-delay d] <event id>…

Rejects events of the subscription: each is offered again after the delay
(and counts as an attempt; after the last one it becomes a dead letter).
Prints {"eventIds":[…],"unknownEventIds":[…]}. A subscription that does not
exist fails the command (NotFound). The delay is a duration such as 90s, 1m
or 1m30s.

Flags:
`

func ackFlags(reject bool) func(*flag.FlagSet) func(context.Context, *clientAPI, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, *clientAPI, []string) error {
		sub := fs.String("subscription", "", "the subscription the events were delivered to (required)")
		var delay *time.Duration
		if reject {
			delay = fs.Duration("redeliver-delay", 0, "wait before the event is offered again; 0 is the sidecar's default")
		}
		return func(ctx context.Context, api *clientAPI, ids []string) error {
			if *sub == "" {
				return errors.New("--subscription is required")
			}
			if len(ids) == 0 {
				return errors.New("no event id given")
			}
			req := &sidecarv1.AckEventsRequest{Subscription: *sub, EventIds: ids, Reject: reject}
			if reject && *delay > 0 {
				req.RedeliverDelay = durationpb.New(*delay)
			}
			resp, err := api.events.AckEvents(ctx, req)
			if err != nil {
				return err
			}
			return printSettled(api.stdout, resp)
		}
	}
}

// printSettled prints the ids an AckEvents or ReplayDeadLetters answer
// settled and those it did not know, as {"eventIds":[…],"unknownEventIds":[…]}.
func printSettled(w io.Writer, resp interface {
	GetEventIds() []string
	GetUnknownEventIds() []string
}) error {
	return printJSON(w, struct {
		EventIDs        []string `json:"eventIds"`
		UnknownEventIDs []string `json:"unknownEventIds"`
	}{nonNil(resp.GetEventIds()), nonNil(resp.GetUnknownEventIds())})
}

// nonNil turns a nil list into an empty one, which JSON prints as [].
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const sendUsage = `Usage: chronoshub-sidecar client send --type event.type [flags] [payload file]

Sends an event to ChronosHub through the sidecar (SendEvent). The payload,
a JSON object, is --payload, or the file named, or stdin when the file is
"-", or with --sample the catalogue's sample for the type (examples/events:
manuscript.submitted, manuscript.status.updated), as "trigger" sends for
webhooks. Prints {"eventId","state","idempotencyKey"}. Give --idempotency-key to
be able to send again safely and to look the event up with "client sent".

Flags:
`

func sendFlags(fs *flag.FlagSet) func(context.Context, *clientAPI, []string) error {
	eventType := fs.String("type", "", "the event type, such as manuscript.submitted (required)")
	payload := fs.String("payload", "", `the payload as JSON, such as '{"manuscriptId":"M-1"}'`)
	key := fs.String("idempotency-key", "", "the idempotency key: a retry with the same key sends nothing new")
	async := fs.Bool("async", false, "return once the event is queued durably; the sidecar delivers it in the background")
	sample := fs.Bool("sample", false, "send the catalogue's sample payload for --type (examples/events) instead of your own")
	return func(ctx context.Context, api *clientAPI, args []string) error {
		var problems []error
		if *eventType == "" {
			problems = append(problems, errors.New("--type is required"))
		}
		var (
			body []byte
			err  error
		)
		switch {
		case !*sample:
			body, err = sendPayload(*payload, args)
		case *payload != "" || len(args) > 0:
			err = errors.New("--sample and a payload are both given: give one")
		case *eventType != "":
			if body = emulator.DefaultPayload(*eventType); body == nil {
				err = fmt.Errorf("--sample: the catalogue has no event type %q (it has %s)", *eventType, strings.Join(emulator.DefaultEventTypes(), ", "))
			}
		}
		if err != nil {
			problems = append(problems, err)
		}
		if err := errors.Join(problems...); err != nil {
			return err
		}
		resp, err := api.events.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: *eventType, Payload: body, IdempotencyKey: *key, Async: *async})
		if err != nil {
			return err
		}
		return printProto(api.stdout, resp)
	}
}

// sendPayload returns the payload from --payload or from the one file
// argument ("-" for stdin), checked to be JSON.
func sendPayload(flagValue string, args []string) ([]byte, error) {
	var body []byte
	switch {
	case len(args) > 1:
		return nil, fmt.Errorf("one payload file expected, got %q", args)
	case len(args) == 1 && flagValue != "":
		return nil, errors.New("--payload and a payload file are both given: give one")
	case len(args) == 1 && args[0] == "-":
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
		if err != nil {
			return nil, fmt.Errorf("read payload from stdin: %w", err)
		}
		body = b
	case len(args) == 1:
		b, err := os.ReadFile(args[0])
		if err != nil {
			return nil, fmt.Errorf("payload file: %w", err)
		}
		body = b
	case flagValue != "":
		body = []byte(flagValue)
	default:
		return nil, errors.New(`no payload: give --payload '{…}', a file, or "-" for stdin`)
	}
	if !json.Valid(body) {
		return nil, errors.New("the payload is not valid JSON")
	}
	return body, nil
}

const sentUsage = `Usage: chronoshub-sidecar client sent <idempotency key>

Prints the state of an event sent with that idempotency key (GetSentEvent):
queued, accepted by ChronosHub, or failed with the reason, and its attempts.

Flags:
`

func sentFlags(*flag.FlagSet) func(context.Context, *clientAPI, []string) error {
	return func(ctx context.Context, api *clientAPI, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("one idempotency key expected, got %d arguments", len(args))
		}
		resp, err := api.events.GetSentEvent(ctx, &sidecarv1.GetSentEventRequest{IdempotencyKey: args[0]})
		if err != nil {
			return err
		}
		return printProto(api.stdout, resp.GetSentEvent())
	}
}

const deadLettersListUsage = `Usage: chronoshub-sidecar client dead-letters list --subscription name [flags]

Prints the subscription's dead letters, one JSON line each, as stream
prints events, with "deadAt" and "reason": "max_attempts" (it used every
attempt) or "filter_narrowed" (an update of the subscription's filter
excluded its type). "attempt" is the number of times it was offered: 0 for
an event that left before it was ever offered. Every page is fetched unless
--page-size is given, which prints one page and then {"nextPageToken":…}
when there are more.

Flags:
`

func deadLettersListFlags(fs *flag.FlagSet) func(context.Context, *clientAPI, []string) error {
	sub := fs.String("subscription", "", "the subscription (required)")
	pageSize := fs.Uint("page-size", 0, "print one page of this many; 0 prints them all")
	pageToken := fs.String("page-token", "", "continue from a nextPageToken printed earlier")
	return func(ctx context.Context, api *clientAPI, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unexpected arguments %q", args)
		}
		if *sub == "" {
			return errors.New("--subscription is required")
		}
		token := *pageToken
		for {
			resp, err := api.events.ListDeadLetters(ctx, &sidecarv1.ListDeadLettersRequest{Subscription: *sub, PageSize: uint32(*pageSize), PageToken: token})
			if err != nil {
				return err
			}
			for _, d := range resp.GetDeadLetters() {
				l := newEventLine(d.GetEvent())
				l.DeadAt, l.Reason, l.Detail = formatTime(d.GetDeadAt()), d.GetReason(), d.GetDetail()
				if err := printJSON(api.stdout, l); err != nil {
					return err
				}
			}
			token = resp.GetNextPageToken()
			switch {
			case token == "":
				return nil
			case *pageSize > 0:
				return printJSON(api.stdout, map[string]string{"nextPageToken": token})
			}
		}
	}
}

const deadLettersReplayUsage = `Usage: chronoshub-sidecar client dead-letters replay --subscription name (<event id>… | --all)

Offers dead letters to the subscription again, with a fresh count of
attempts. Prints {"eventIds":[…],"unknownEventIds":[…]}.

Flags:
`

func deadLettersReplayFlags(fs *flag.FlagSet) func(context.Context, *clientAPI, []string) error {
	sub := fs.String("subscription", "", "the subscription (required)")
	all := fs.Bool("all", false, "replay every dead letter of the subscription")
	return func(ctx context.Context, api *clientAPI, ids []string) error {
		switch {
		case *sub == "":
			return errors.New("--subscription is required")
		case *all && len(ids) > 0:
			return errors.New("give event ids or --all, not both")
		case !*all && len(ids) == 0:
			return errors.New("give event ids, or --all")
		}
		resp, err := api.events.ReplayDeadLetters(ctx, &sidecarv1.ReplayDeadLettersRequest{Subscription: *sub, EventIds: ids, All: *all})
		if err != nil {
			return err
		}
		return printSettled(api.stdout, resp)
	}
}

const subscriptionsListUsage = `Usage: chronoshub-sidecar client subscriptions list

Prints every subscription, one JSON object per line: its name, event-type
filter, the position up to which it acknowledged everything, its backlog,
its unacknowledged events, its open streams on this sidecar and its dead
letters.

Flags:
`

func subscriptionsListFlags(fs *flag.FlagSet) func(context.Context, *clientAPI, []string) error {
	return func(ctx context.Context, api *clientAPI, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unexpected arguments %q", args)
		}
		resp, err := api.events.ListSubscriptions(ctx, &sidecarv1.ListSubscriptionsRequest{})
		if err != nil {
			return err
		}
		for _, sub := range resp.GetSubscriptions() {
			if err := printProto(api.stdout, sub); err != nil {
				return err
			}
		}
		return nil
	}
}

const subscriptionsGetUsage = `Usage: chronoshub-sidecar client subscriptions get --subscription name

Prints one subscription as subscriptions list does.

Flags:
`

const subscriptionsUpdateUsage = `Usage: chronoshub-sidecar client subscriptions update --subscription name --event-types list

Sets the subscription's event-type filter. A subscription's filter is fixed
when it is created; this is the explicit way to change it. Events of the
types a narrower filter excludes that are waiting go to the subscription's
dead letters (reason filter_narrowed), never nowhere. Prints the
subscription and how many events moved.

Flags:
`

const subscriptionsDeleteUsage = `Usage: chronoshub-sidecar client subscriptions delete --subscription name

Removes the subscription and its position; a stream that names it later
starts a new one.

Flags:
`

type subscriptionOp int

const (
	subscriptionGet subscriptionOp = iota
	subscriptionUpdate
	subscriptionDelete
)

func subscriptionFlags(op subscriptionOp) func(fs *flag.FlagSet) func(context.Context, *clientAPI, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, *clientAPI, []string) error {
		sub := fs.String("subscription", "", "the subscription (required)")
		var types *string
		if op == subscriptionUpdate {
			types = fs.String("event-types", "", "the new comma-separated event types or patterns; empty for every type")
		}
		return func(ctx context.Context, api *clientAPI, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q", args)
			}
			if *sub == "" {
				return errors.New("--subscription is required")
			}
			var (
				m   proto.Message
				err error
			)
			switch op {
			case subscriptionGet:
				var r *sidecarv1.GetSubscriptionResponse
				r, err = api.events.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: *sub})
				m = r.GetSubscription()
			case subscriptionUpdate:
				m, err = api.events.UpdateSubscription(ctx, &sidecarv1.UpdateSubscriptionRequest{Subscription: *sub, EventTypes: splitList(*types)})
			case subscriptionDelete:
				m, err = api.events.DeleteSubscription(ctx, &sidecarv1.DeleteSubscriptionRequest{Subscription: *sub})
			}
			if err != nil {
				return err
			}
			return printProto(api.stdout, m)
		}
	}
}
