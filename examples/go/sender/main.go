// Command sender is an example app that sends one event to ChronosHub through
// chronoshub-sidecar's SendEvent RPC and prints ChronosHub's event id.
//
// It sends with an idempotency key (-idempotency-key, or a new UUID) and
// handles each error class by its gRPC code:
//
//   - INVALID_ARGUMENT: the event is wrong (type not allowed, payload not
//     JSON, or ChronosHub refused it). Fix the event; retrying cannot help.
//   - FAILED_PRECONDITION: an operator problem in the sidecar (ChronosHub
//     refused its API key, or the account is inactive). Not the app's to fix.
//   - ALREADY_EXISTS: the idempotency key was used before for a different
//     event. Use a new key for a new event.
//   - UNAVAILABLE, DEADLINE_EXCEEDED: transient. Retried with exponential
//     backoff and the SAME idempotency key, so that a retry of an event
//     ChronosHub did accept returns the first result instead of sending twice.
//
// -addr (CHRONOSHUB_GRPC_ADDR, default 127.0.0.1:50051) is the sidecar;
// CHRONOSHUB_API_TOKEN, when set, is sent as a bearer token.
//
//	go run ./examples/go/sender -type manuscript.submitted -payload '{"manuscriptId":"M-1"}'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // -h printed the usage: success
	default:
		fmt.Fprintln(os.Stderr, "sender:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sender", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a flag error is returned and printed by main
	defAddr := getenv("CHRONOSHUB_GRPC_ADDR")
	if defAddr == "" {
		defAddr = "127.0.0.1:50051"
	}
	addr := fs.String("addr", defAddr, "the sidecar's gRPC address (env CHRONOSHUB_GRPC_ADDR)")
	eventType := fs.String("type", "manuscript.submitted", "event type")
	payload := fs.String("payload", `{"manuscriptId":"M-1","title":"Example"}`, "the event as a JSON document")
	payloadFile := fs.String("payload-file", "", "read the payload from this file instead of -payload")
	key := fs.String("idempotency-key", "", "idempotency key; empty means a new UUID")
	attempts := fs.Int("attempts", 5, "attempts for transient errors (UNAVAILABLE, DEADLINE_EXCEEDED)")
	timeout := fs.Duration("timeout", 15*time.Second, "deadline of each attempt; the sidecar retries ChronosHub within it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // -h: the usage on stdout, and main exits 0
			fmt.Fprintln(stdout, "Usage of sender:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	body := []byte(*payload)
	if *payloadFile != "" {
		b, err := os.ReadFile(*payloadFile)
		if err != nil {
			return err
		}
		body = b
	}
	if *key == "" {
		*key = uuid.NewString()
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", *addr, err)
	}
	defer conn.Close()
	if token := getenv("CHRONOSHUB_API_TOKEN"); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	client := sidecarv1.NewEventServiceClient(conn)
	req := &sidecarv1.SendEventRequest{Type: *eventType, Payload: body, IdempotencyKey: *key}

	for attempt := 1; ; attempt++ {
		resp, err := send(ctx, client, req, *timeout)
		if err == nil {
			fmt.Fprintf(stderr, "sender: %s accepted (idempotency key %s)\n", req.GetType(), resp.GetIdempotencyKey())
			fmt.Fprintln(stdout, resp.GetEventId())
			return nil
		}
		switch status.Code(err) {
		case codes.InvalidArgument:
			return fmt.Errorf("the event is invalid; fix it, retrying will not help: %s", describe(err))
		case codes.FailedPrecondition:
			return fmt.Errorf("the sidecar cannot send (an operator must fix its credentials or the ChronosHub account): %s", describe(err))
		case codes.AlreadyExists:
			return fmt.Errorf("idempotency key %q was already used for a different event; use a new key: %s", *key, describe(err))
		case codes.Unavailable, codes.DeadlineExceeded:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if attempt >= *attempts {
				return fmt.Errorf("gave up after %d attempts (idempotency key %s, safe to retry later): %s", attempt, *key, describe(err))
			}
			wait := backoff(attempt)
			fmt.Fprintf(stderr, "sender: attempt %d: %s; retrying in %v with the same idempotency key\n", attempt, describe(err), wait.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		default:
			return fmt.Errorf("send: %s", describe(err))
		}
	}
}

// backoff is the wait after failed attempt n (1-based): 500ms doubling to at
// most 10s, with jitter.
func backoff(n int) time.Duration {
	ceiling := min(500*time.Millisecond<<min(n-1, 5), 10*time.Second)
	return ceiling/2 + rand.N(ceiling/2)
}

func send(ctx context.Context, client sidecarv1.EventServiceClient, req *sidecarv1.SendEventRequest, timeout time.Duration) (*sidecarv1.SendEventResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return client.SendEvent(ctx, req)
}

// describe renders a gRPC error with the google.rpc details the sidecar
// attaches: ErrorInfo's reason and BadRequest's field violations.
func describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg := fmt.Sprintf("%s: %s", st.Code(), st.Message())
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			msg += fmt.Sprintf(" [%s]", d.GetReason())
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				msg += fmt.Sprintf(" [%s: %s]", v.GetField(), v.GetDescription())
			}
		}
	}
	return msg
}
