package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

const replayUsage = `Usage: chronoshub-sidecar client replay --subscription name (<event id>… | --since time [--until time]) [flags]

Offers events of the sidecar's log again to a subscription, with a fresh
count of attempts, marked as replays (Event.replay): by event ids, or every
event received in a time range. A time is RFC 3339 (2026-03-01T09:00:00Z)
or a duration before now (24h, 90m). A time range is replayed in pages of
--page-size events, one call each (--timeout bounds each call, not the
whole replay), so that a day of events does not meet a deadline.

Prints one JSON object per call: the ids offered again ("eventIds"), ids
not in the log ("unknownEventIds": never received, past the retention
window, or of types the subscription does not receive), and
"startExpired": true when events from the start of the range have left the
log. The last line is {"replayed":N}.

Flags:
`

func replayFlags(fs *flag.FlagSet) func(context.Context, *clientAPI, []string) error {
	sub := fs.String("subscription", "", "the subscription (required)")
	since := fs.String("since", "", "replay events received at or after this time (RFC 3339, or a duration before now such as 24h)")
	until := fs.String("until", "", "with --since, replay events received before this time (default: up to now)")
	types := fs.String("event-types", "", "only events of these types, comma-separated patterns (manuscript.*)")
	pageSize := fs.Uint("page-size", 0, "events per call of a time range (default 1000, at most 10000)")
	return func(ctx context.Context, api *clientAPI, ids []string) error {
		now := time.Now()
		req := &sidecarv1.ReplayEventsRequest{Subscription: *sub, EventIds: ids, EventTypes: splitList(*types), PageSize: uint32(min(*pageSize, 1<<31))}
		switch {
		case *sub == "":
			return errors.New("--subscription is required")
		case len(ids) > 0 && (*since != "" || *until != ""):
			return errors.New("give event ids or --since, not both")
		case *until != "" && *since == "":
			return errors.New("--until needs --since")
		case len(ids) == 0 && *since == "":
			return errors.New("give event ids, or --since (and optionally --until)")
		}
		if *since != "" {
			t, err := parseReplayTime(*since, now)
			if err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			req.StartTime = timestamppb.New(t)
		}
		if *until != "" {
			t, err := parseReplayTime(*until, now)
			if err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if !t.After(req.StartTime.AsTime()) {
				return fmt.Errorf("--until %s is not after --since %s", t.Format(time.RFC3339), req.StartTime.AsTime().Format(time.RFC3339))
			}
			req.EndTime = timestamppb.New(t)
		}
		replayed := 0
		for {
			callCtx, cancel := context.WithTimeout(ctx, api.timeout)
			resp, err := api.events.ReplayEvents(callCtx, req)
			cancel()
			if err != nil {
				if replayed > 0 {
					return fmt.Errorf("after %d events replayed: %w", replayed, err)
				}
				return err
			}
			replayed += len(resp.GetEventIds())
			if err := printProto(api.stdout, resp); err != nil {
				return err
			}
			if resp.GetNextPageToken() == "" {
				return printJSON(api.stdout, map[string]int{"replayed": replayed})
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
}

// parseReplayTime reads an RFC 3339 time, or a duration before now.
func parseReplayTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-03-01T09:00:00Z) nor a positive duration (24h)", s)
	}
	return now.Add(-d), nil
}
