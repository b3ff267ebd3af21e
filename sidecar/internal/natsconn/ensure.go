package natsconn

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReplicasSetting is the setting that every stream's and bucket's replica
// count comes from; mismatch errors name it.
const ReplicasSetting = "CHRONOSHUB_NATS_REPLICAS"

// Mismatch is one setting in which an existing stream or bucket differs from
// what this sidecar is configured for.
type Mismatch struct {
	// Field is the setting's name in the stream's configuration, as
	// `nats stream info` shows it: "replicas", "max age", ...
	Field string
	// Have is the existing value, Want the configured one.
	Have, Want string
	// Setting, when not empty, is the sidecar setting Want comes from.
	Setting string
}

// MismatchError says that a stream or bucket exists with other settings than
// this sidecar's. EnsureStream and EnsureKeyValue never change an existing
// one: on a shared cluster the last replica to start would otherwise decide
// replication, retention and the duplicate window for every other.
type MismatchError struct {
	Kind       string // "stream" or "bucket"
	Name       string
	Mismatches []Mismatch
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s exists with ", e.Kind, e.Name)
	for i, m := range e.Mismatches {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s, this sidecar is configured for %s", m.Field, m.Have, m.Want)
		if m.Setting != "" {
			fmt.Fprintf(&b, " (%s)", m.Setting)
		}
	}
	fmt.Fprintf(&b, ": the sidecar never reconfigures an existing %s; change the setting to match, or change the %s on the cluster (nats %s edit)",
		e.Kind, e.Kind, map[string]string{"stream": "stream", "bucket": "kv"}[e.Kind])
	return b.String()
}

// Settings names the sidecar settings that fields of a stream configuration
// come from, for mismatch errors: field ("max age", "duplicate window", ...;
// see Mismatch.Field) to setting (CHRONOSHUB_RETENTION). Replicas always name
// ReplicasSetting.
type Settings map[string]string

// EnsureStream creates the stream cfg describes when it does not exist, and
// otherwise checks that the existing one has the same replicas, subjects,
// retention, storage, discard policy, limits (max age, bytes, messages, per
// subject, message size), duplicate window and message TTL support; Description
// and Metadata are not compared. On a difference it returns a *MismatchError
// listing each one and changes nothing. settings names where the configured
// values come from. A zero limit in cfg means the server's default, as in
// jetstream.StreamConfig.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, settings Settings) (jetstream.Stream, error) {
	for range 3 {
		s, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // Another replica created it meanwhile: check it.
			}
			if err != nil {
				return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
			}
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		if ms := compareStream(s.CachedInfo().Config, cfg, settings); len(ms) > 0 {
			return nil, &MismatchError{Kind: "stream", Name: cfg.Name, Mismatches: ms}
		}
		return s, nil
	}
	return nil, fmt.Errorf("create stream %s: created and deleted concurrently", cfg.Name)
}

// EnsureKeyValue creates the bucket cfg describes when it does not exist, and
// otherwise checks that the existing one has the same replicas, history, TTL,
// storage, size limits and limit marker TTL, as EnsureStream does for streams.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, settings Settings) (jetstream.KeyValue, error) {
	for range 3 {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
			}
			return kv, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up bucket %s: %w", cfg.Bucket, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		}
		bs, ok := st.(*jetstream.KeyValueBucketStatus)
		if !ok {
			return nil, fmt.Errorf("bucket %s: unexpected status type %T", cfg.Bucket, st)
		}
		if ms := compareStream(bs.StreamInfo().Config, kvStreamConfig(cfg), kvSettings(settings)); len(ms) > 0 {
			return nil, &MismatchError{Kind: "bucket", Name: cfg.Bucket, Mismatches: ms}
		}
		return kv, nil
	}
	return nil, fmt.Errorf("create bucket %s: created and deleted concurrently", cfg.Bucket)
}

// kvStreamConfig is the part of the stream jetstream.CreateKeyValue makes for
// cfg that compareStream checks.
func kvStreamConfig(cfg jetstream.KeyValueConfig) jetstream.StreamConfig {
	dup := 2 * time.Minute
	if cfg.TTL > 0 && cfg.TTL < dup {
		dup = cfg.TTL
	}
	return jetstream.StreamConfig{
		Name:                   "KV_" + cfg.Bucket,
		Subjects:               []string{"$KV." + cfg.Bucket + ".>"},
		Retention:              jetstream.LimitsPolicy,
		Discard:                jetstream.DiscardNew,
		MaxMsgsPerSubject:      int64(max(cfg.History, 1)),
		MaxBytes:               cfg.MaxBytes,
		MaxMsgSize:             cfg.MaxValueSize,
		MaxAge:                 cfg.TTL,
		Storage:                cfg.Storage,
		Replicas:               cfg.Replicas,
		Duplicates:             dup,
		AllowMsgTTL:            cfg.LimitMarkerTTL != 0,
		SubjectDeleteMarkerTTL: cfg.LimitMarkerTTL,
		AllowDirect:            true,
	}
}

// kvSettings renames the stream fields of settings to the bucket's names.
func kvSettings(s Settings) Settings {
	out := Settings{}
	for k, v := range s {
		out[k] = v
	}
	if v, ok := s["history"]; ok {
		out["max messages per subject"] = v
	}
	if v, ok := s["ttl"]; ok {
		out["max age"] = v
	}
	return out
}

// compareStream lists how have differs from want in the settings that matter.
func compareStream(have, want jetstream.StreamConfig, settings Settings) []Mismatch {
	var ms []Mismatch
	add := func(field, h, w string) {
		if h == w {
			return
		}
		setting := settings[field]
		if field == "replicas" {
			setting = ReplicasSetting
		}
		ms = append(ms, Mismatch{Field: field, Have: h, Want: w, Setting: setting})
	}
	add("replicas", strconv.Itoa(max(have.Replicas, 1)), strconv.Itoa(max(want.Replicas, 1)))
	add("subjects", subjects(have.Subjects), subjects(want.Subjects))
	add("retention", have.Retention.String(), want.Retention.String())
	add("storage", have.Storage.String(), want.Storage.String())
	add("discard policy", have.Discard.String(), want.Discard.String())
	add("max age", age(have.MaxAge), age(want.MaxAge))
	add("max bytes", limit(have.MaxBytes), limit(want.MaxBytes))
	add("max messages", limit(have.MaxMsgs), limit(want.MaxMsgs))
	add("max messages per subject", limit(have.MaxMsgsPerSubject), limit(want.MaxMsgsPerSubject))
	add("max message size", limit(int64(have.MaxMsgSize)), limit(int64(want.MaxMsgSize)))
	add("duplicate window", have.Duplicates.String(), duplicates(want).String())
	add("allow message TTL", strconv.FormatBool(have.AllowMsgTTL), strconv.FormatBool(want.AllowMsgTTL))
	add("limit marker TTL", off(have.SubjectDeleteMarkerTTL), off(want.SubjectDeleteMarkerTTL))
	add("allow direct", strconv.FormatBool(have.AllowDirect), strconv.FormatBool(want.AllowDirect))
	return ms
}

// duplicates is the duplicate window the server gives a stream created with
// cfg: 2 minutes unless set, and never more than MaxAge.
func duplicates(cfg jetstream.StreamConfig) time.Duration {
	d := cfg.Duplicates
	if d == 0 {
		d = 2 * time.Minute
	}
	if cfg.MaxAge > 0 && d > cfg.MaxAge {
		d = cfg.MaxAge
	}
	return d
}

func subjects(s []string) string {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

func limit(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

func age(d time.Duration) string {
	if d <= 0 {
		return "unlimited"
	}
	return d.String()
}

func off(d time.Duration) string {
	if d <= 0 {
		return "off"
	}
	return d.String()
}
