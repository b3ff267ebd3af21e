// Package config loads the configuration of `chronoshub-sidecar serve` from
// command-line flags and CHRONOSHUB_… environment variables.
//
// Every setting is both a flag and a variable: a flag given on the command
// line wins over the variable, and the variable wins over the default; an
// empty variable counts as unset. All settings are validated together and
// every problem is reported at once, each naming the variable and the flag.
// Secrets (the API key, the webhook secrets, the app API's bearer token) are
// never flags: they come from a variable or from a file, which
// credentials.Watcher reloads on change. --help documents every setting and
// prints defaults only, never a value from the environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/credentials"
)

// Names of the credentials, as credentials.Source.Name reports them in logs
// and to credentials.WatcherOptions.OnReload.
const (
	APIKeyName        = "api_key"
	WebhookSecretName = "webhook_secret"
	APITokenName      = "api_token"
)

// Config is the validated configuration of the serve subcommand. Parse fills
// every field with its effective value; nothing in it is a default to be
// applied later.
type Config struct {
	// BaseURL is ChronosHub's base URL (test, staging or production), an
	// absolute http or https URL without query, fragment or user information.
	BaseURL string
	// APIKey is the API key sent as X-Api-Key, from CHRONOSHUB_API_KEY or
	// CHRONOSHUB_API_KEY_FILE. Never nil. Pass APIKey.Reveal as the client's
	// key function, and APIKey to credentials.Watcher.Add.
	APIKey *credentials.Source
	// AllowedEventTypes are the event types or patterns (manuscript.*) an app
	// may send; empty allows any valid type.
	AllowedEventTypes []string
	// SchemaDir, when not empty, is an existing directory of JSON Schemas
	// named <event.type>.json.
	SchemaDir string
	// MaxPayloadBytes is the largest payload an app may send.
	MaxPayloadBytes int64
	// SendMaxAttempts is how many HTTP attempts one SendEvent makes at most.
	SendMaxAttempts int
	// SendTimeout is the deadline of a synchronous SendEvent whose caller set
	// none.
	SendTimeout time.Duration
	// IdempotencyWindow is how long an idempotency key's result is kept.
	IdempotencyWindow time.Duration
	// AsyncFailAfter is how long an asynchronous event is retried before it
	// is marked failed.
	AsyncFailAfter time.Duration
	// AsyncConcurrency is how many asynchronous events are sent to ChronosHub
	// at once.
	AsyncConcurrency int
	// AsyncOrderByType keeps asynchronous events of one type in the order
	// they were queued whatever AsyncConcurrency.
	AsyncOrderByType bool

	// WebhookSecrets are the accepted webhook secrets, from
	// CHRONOSHUB_WEBHOOK_SECRET or CHRONOSHUB_WEBHOOK_SECRET_FILE, holding
	// at least one value. Never nil. Pass WebhookSecrets.Secrets to the
	// verifier, and WebhookSecrets to credentials.Watcher.Add.
	WebhookSecrets *credentials.Source
	// WebhookAddr is the webhook listener's host:port.
	WebhookAddr string
	// WebhookPath is the webhook's URL path; it starts with /.
	WebhookPath string
	// WebhookPlaintext is true when TLS ends upstream and the webhook
	// listener serves plain HTTP.
	WebhookPlaintext bool
	// TLSCertFile and TLSKeyFile are the webhook's certificate and key files;
	// both empty when WebhookPlaintext.
	TLSCertFile, TLSKeyFile string
	// TLSCertificate is the pair loaded from TLSCertFile and TLSKeyFile, or
	// nil when WebhookPlaintext. Pass it to credentials.Watcher.AddCertificate.
	TLSCertificate *credentials.Certificate
	// WebhookMaxBodyBytes is the largest webhook body accepted.
	WebhookMaxBodyBytes int64
	// WebhookMaxBodyBytesDefault and MaxPayloadBytesDefault are true when
	// the operator left WebhookMaxBodyBytes or MaxPayloadBytes at its
	// default: the sidecar may then lower it to what an external NATS
	// server's max_payload takes, where it refuses an explicit setting.
	WebhookMaxBodyBytesDefault, MaxPayloadBytesDefault bool
	// WebhookTolerance is how far X-Timestamp may be from now, either way.
	WebhookTolerance time.Duration
	// WebhookMaxBodyMemory bounds the memory all webhook bodies being read
	// may hold together; it is at least WebhookMaxBodyBytes.
	WebhookMaxBodyMemory int64
	// WebhookStoreTimeout bounds how long a webhook waits for the store.
	WebhookStoreTimeout time.Duration
	// WebhookHeaderTimeout is how long a webhook client may take to send its
	// request's headers.
	WebhookHeaderTimeout time.Duration
	// WebhookMaxConns caps the webhook listener's open connections; 0 means
	// unlimited.
	WebhookMaxConns int

	// SubscriptionsFile, when not empty, is the JSON file that declares
	// subscriptions; Subscriptions are its declarations, in file order.
	SubscriptionsFile string
	Subscriptions     []Subscription
	// StrictSubscriptions lets streams open only declared subscriptions.
	StrictSubscriptions bool

	// GRPCAddr and HTTPAddr are the app-facing gRPC and REST listeners, in
	// the syntax of ParseListenAddr. Unless AllowRemoteAPI, each is a unix
	// socket or a loopback host:port.
	GRPCAddr, HTTPAddr string
	// AllowRemoteAPI lets GRPCAddr and HTTPAddr listen beyond loopback; it
	// requires APIToken.
	AllowRemoteAPI bool
	// APIToken, when not nil, is the bearer token the app-facing API
	// requires, from CHRONOSHUB_API_TOKEN or CHRONOSHUB_API_TOKEN_FILE.
	APIToken *credentials.Source

	// DataDir is where the embedded store keeps its files; empty with
	// NATSURL, which it may not be set with.
	DataDir string
	// NATSURL, when not empty, is an external NATS JetStream (a
	// comma-separated list of server URLs); empty means embedded NATS in
	// DataDir.
	NATSURL string
	// NATSCredsFile, when not empty, is the NATS credentials file for
	// NATSURL.
	NATSCredsFile string
	// NATSTLSCAFile, when not empty, is the PEM file of the CAs that sign
	// the NATS servers' certificates (NATSURL only).
	NATSTLSCAFile string
	// NATSTLSCertFile and NATSTLSKeyFile, both set or both empty, are the
	// client certificate and key for mutual TLS with NATS (NATSURL only).
	NATSTLSCertFile, NATSTLSKeyFile string
	// NATSDomain, when not empty, is the JetStream domain of NATSURL.
	NATSDomain string
	// NATSReplicas is the replica count of every stream and bucket the
	// sidecar creates: 1 with the embedded store, 3 by default with
	// NATSURL.
	NATSReplicas int
	// SyncAlways (the default) makes every event fsynced before the webhook
	// answers 2xx (group commit); otherwise the embedded store fsyncs every
	// SyncInterval. Either way every event reaches the operating system
	// before the webhook answers 2xx.
	// With NATSURL both are zero: the cluster's replication and its own
	// sync setting decide durability.
	SyncAlways bool
	// SyncInterval is the fsync interval when not SyncAlways, and 0 when
	// SyncAlways or with NATSURL.
	SyncInterval time.Duration
	// Retention is how long events are kept for delivery and replay.
	Retention time.Duration
	// DuplicateWindow is how long a webhook event id is remembered to drop
	// ChronosHub's retries.
	DuplicateWindow time.Duration
	// AckWait is how long a delivered event may stay unacknowledged before it
	// is offered again.
	AckWait time.Duration
	// MaxAttempts is how many times an event is offered before it is
	// dead-lettered.
	MaxAttempts int
	// MaxInFlight is the default and the cap of a stream's unacknowledged
	// events.
	MaxInFlight int
	// LogMaxBytes caps the event log's size; 0 means automatic (see the
	// setting's usage).
	LogMaxBytes int64
	// MaxSubscriptions bounds how many subscriptions may exist.
	MaxSubscriptions int
	// MaxFilters bounds the event-type filters of one subscription.
	MaxFilters int
	// SubscriptionIdleExpiry is how long a subscription may go without a
	// stream before it and its position are removed.
	SubscriptionIdleExpiry time.Duration
	// MaxAckPending caps a subscription's unacknowledged events across its
	// streams; it is at least MaxInFlight.
	MaxAckPending int

	// AdminAddr is the health and metrics listener's host:port.
	AdminAddr string
	// Pprof says whether the admin listener serves net/http/pprof under
	// /debug/pprof/: PprofOff (the default), PprofLoopback (only when
	// AdminAddr is loopback: validation refuses another address) or
	// PprofAny.
	Pprof string
	// CredentialsPollInterval is how often credential and certificate files
	// are re-read.
	CredentialsPollInterval time.Duration
	// SecretRotationGrace is how long previous webhook secrets stay accepted
	// after the secret file changes.
	SecretRotationGrace time.Duration
	// StoreFailureLimit is how long appends may fail without a success
	// before /healthz reports the sidecar dead, so that it is restarted.
	StoreFailureLimit time.Duration
	// ShutdownGrace bounds how long shutdown waits for in-flight work.
	ShutdownGrace time.Duration
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// LogFormat is how log lines are written: LogJSON or LogText.
	LogFormat LogFormat
}

// LogFormat is how the program writes its log lines.
type LogFormat string

// The log formats of CHRONOSHUB_LOG_FORMAT.
const (
	// LogJSON writes one JSON object per line, for log collectors.
	LogJSON LogFormat = "json"
	// LogText writes slog's key=value lines, for people.
	LogText LogFormat = "text"
)

// Byte and count limits of the integer settings.
const (
	// maxBytes is the largest payload setting: NATS's hard limit on a
	// message (64 MiB) less the 64 KiB an event's headers may take, so that
	// every accepted size can be stored and delivered.
	maxBytes    = 64<<20 - 64<<10
	maxAttempts = 100
	maxCount    = 1_000_000
	// maxAsyncConcurrency is outbox.Options.Concurrency's bound.
	maxAsyncConcurrency = 256
)

// setting is one configuration setting: an environment variable and,
// unless secret, the flag derived from its name.
type setting struct {
	group  string
	env    string
	secret bool   // environment only: never a flag
	def    string // the default, parsed like a given value; "" for none
	note   string // shown in --help instead of the default, such as "required"
	usage  string
	value  value
}

// flagName returns the setting's flag, without dashes: the variable's name
// without CHRONOSHUB_, lower case, with dashes for underscores.
func (s setting) flagName() string {
	if s.secret {
		return ""
	}
	return flagFor(s.env)
}

// flagFor derives a flag name from a variable's: without CHRONOSHUB_, lower
// case, dashes for underscores.
func flagFor(env string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(env, "CHRONOSHUB_"), "_", "-"))
}

// label names the setting in error messages: the variable and the flag.
func (s setting) label() string {
	if s.secret {
		return s.env
	}
	return s.env + " (--" + s.flagName() + ")"
}

// logKey is the setting's key in Config.LogValue.
func (s setting) logKey() string {
	return strings.ToLower(strings.TrimPrefix(s.env, "CHRONOSHUB_"))
}

// raw holds what Parse reads before it builds the credentials: the text of
// the secret variables, which nothing prints, and the file paths.
type raw struct {
	apiKey, apiKeyFile               string
	webhookSecret, webhookSecretFile string
	apiToken, apiTokenFile           string
	// explicit holds the variables given a value by a flag or the
	// environment, not by a default.
	explicit map[string]bool
}

// settings returns every setting, bound to c and r, in --help order.
func settings(c *Config, r *raw) []setting {
	const (
		chronoshub = "Sending events to ChronosHub (SendEvent)"
		webhook    = "Receiving ChronosHub's webhooks"
		app        = "App-facing API (gRPC and REST)"
		store      = "Event log"
		ops        = "Operations"
	)
	return []setting{
		{group: chronoshub, env: "CHRONOSHUB_BASE_URL", note: "required",
			usage: "ChronosHub base URL for inbound events (test, staging or production): an absolute http(s) URL.",
			value: stringValue{p: &c.BaseURL, arg: "URL", check: checkBaseURL}},
		{group: chronoshub, env: "CHRONOSHUB_API_KEY", secret: true, note: "this or CHRONOSHUB_API_KEY_FILE is required",
			usage: "The API key sent to ChronosHub as X-Api-Key.",
			value: secretValue{raw: &r.apiKey, src: &c.APIKey}},
		{group: chronoshub, env: "CHRONOSHUB_API_KEY_FILE",
			usage: "A file holding the API key, re-read when it changes (a mounted Kubernetes Secret).",
			value: secretFileValue{path: &r.apiKeyFile, src: &c.APIKey}},
		{group: chronoshub, env: "CHRONOSHUB_ALLOWED_EVENT_TYPES", note: "any type",
			usage: "Comma-separated event types or patterns (manuscript.submitted, manuscript.*) an app may send; empty allows any valid type.",
			value: eventTypesValue{p: &c.AllowedEventTypes}},
		{group: chronoshub, env: "CHRONOSHUB_SCHEMA_DIR", note: "none",
			usage: "A directory of JSON Schemas named <event.type>.json that payloads must satisfy.",
			value: stringValue{p: &c.SchemaDir, arg: "path"}},
		{group: chronoshub, env: "CHRONOSHUB_MAX_PAYLOAD_BYTES", def: "1048576",
			usage: "The largest payload an app may send, in bytes.",
			value: intValue[int64]{p: &c.MaxPayloadBytes, min: 1, max: maxBytes}},
		{group: chronoshub, env: "CHRONOSHUB_SEND_MAX_ATTEMPTS", def: "5",
			usage: "How many HTTP attempts one event gets at most; network errors, 5xx and 429 are retried with backoff.",
			value: intValue[int]{p: &c.SendMaxAttempts, min: 1, max: maxAttempts}},
		{group: chronoshub, env: "CHRONOSHUB_SEND_TIMEOUT", def: "30s",
			usage: "The deadline of a synchronous SendEvent whose caller sets none.",
			value: durationValue{p: &c.SendTimeout}},
		{group: chronoshub, env: "CHRONOSHUB_IDEMPOTENCY_WINDOW", def: "24h",
			usage: "How long a SendEvent idempotency key returns its first result instead of posting again.",
			value: durationValue{p: &c.IdempotencyWindow}},
		{group: chronoshub, env: "CHRONOSHUB_ASYNC_FAIL_AFTER", def: "24h",
			usage: "How long an asynchronous SendEvent is retried before it is marked failed.",
			value: durationValue{p: &c.AsyncFailAfter}},
		{group: chronoshub, env: "CHRONOSHUB_ASYNC_CONCURRENCY", def: "8",
			usage: "How many asynchronous SendEvents this replica sends to ChronosHub at once; above 1 they may reach ChronosHub out of order, 1 sends them in the order queued (within this replica: replicas sharing a cluster each forward from the one queue).",
			value: intValue[int]{p: &c.AsyncConcurrency, min: 1, max: maxAsyncConcurrency}},
		{group: chronoshub, env: "CHRONOSHUB_ASYNC_ORDER_BY_TYPE", def: "false",
			usage: "Send asynchronous SendEvents of one event type one at a time, in the order queued, whatever CHRONOSHUB_ASYNC_CONCURRENCY (a retried event still goes out behind later ones; within this replica, not across replicas sharing a cluster).",
			value: boolValue{p: &c.AsyncOrderByType}},

		{group: webhook, env: "CHRONOSHUB_WEBHOOK_SECRET", secret: true, note: "this or CHRONOSHUB_WEBHOOK_SECRET_FILE is required",
			usage: "The webhook signing secret; several, separated by commas or one per line, are all accepted (a rotation).",
			value: secretValue{raw: &r.webhookSecret, src: &c.WebhookSecrets}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_SECRET_FILE",
			usage: "A file holding the webhook secret(s), re-read when it changes; after a change the previous secrets stay accepted for CHRONOSHUB_SECRET_ROTATION_GRACE.",
			value: secretFileValue{path: &r.webhookSecretFile, src: &c.WebhookSecrets}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_ADDR", def: ":8443",
			usage: "The webhook listener's host:port, the one port meant to be reachable from outside the pod.",
			value: stringValue{p: &c.WebhookAddr, arg: "host:port", check: checkTCPAddr}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_PATH", def: "/webhook",
			usage: "The webhook's URL path.",
			value: stringValue{p: &c.WebhookPath, arg: "path", check: checkWebhookPath}},
		{group: webhook, env: "CHRONOSHUB_TLS_CERT_FILE", note: "required unless plaintext",
			usage: "The webhook's TLS certificate (PEM, with its chain), re-read when it changes.",
			value: stringValue{p: &c.TLSCertFile, arg: "path"}},
		{group: webhook, env: "CHRONOSHUB_TLS_KEY_FILE", note: "required unless plaintext",
			usage: "The webhook's TLS private key (PEM), re-read when it changes.",
			value: stringValue{p: &c.TLSKeyFile, arg: "path"}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_PLAINTEXT", def: "false",
			usage: "Serve the webhook over plain HTTP, when TLS ends upstream (an ingress). Excludes the TLS files.",
			value: boolValue{p: &c.WebhookPlaintext}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES", def: "1048576",
			usage: "The largest webhook body accepted, in bytes; larger ones get 413.",
			value: intValue[int64]{p: &c.WebhookMaxBodyBytes, min: 1, max: maxBytes}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_TOLERANCE", def: "5m",
			usage: "How far X-Timestamp may be from now, in either direction.",
			value: durationValue{p: &c.WebhookTolerance}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_MAX_BODY_MEMORY", def: "67108864",
			usage: "The most memory, in bytes, that all webhook bodies being read may hold together; beyond it requests get 503 with Retry-After unread, so that unauthenticated clients cannot exhaust memory. At least CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES.",
			value: intValue[int64]{p: &c.WebhookMaxBodyMemory, min: 1, max: 1 << 40}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_STORE_TIMEOUT", def: "5s",
			usage: "How long a webhook waits for the event store before it answers 503 (ChronosHub retries). The append finishes even if the client hangs up.",
			value: durationValue{p: &c.WebhookStoreTimeout}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_HEADER_TIMEOUT", def: "5s",
			usage: "How long a webhook client may take to send its request's headers; slower ones are cut off.",
			value: durationValue{p: &c.WebhookHeaderTimeout}},
		{group: webhook, env: "CHRONOSHUB_WEBHOOK_MAX_CONNS", def: "1024",
			usage: "The most open connections on the webhook listener; 0 means unlimited.",
			value: intValue[int]{p: &c.WebhookMaxConns, min: 0, max: maxCount}},

		{group: app, env: "CHRONOSHUB_GRPC_ADDR", def: "127.0.0.1:50051",
			usage: "The app-facing gRPC listener: a loopback host:port or unix:///absolute/path.",
			value: stringValue{p: &c.GRPCAddr, arg: "address", check: checkListenAddr}},
		{group: app, env: "CHRONOSHUB_HTTP_ADDR", def: "127.0.0.1:50052",
			usage: "The app-facing REST listener (grpc-gateway): a loopback host:port or unix:///absolute/path.",
			value: stringValue{p: &c.HTTPAddr, arg: "address", check: checkListenAddr}},
		{group: app, env: "CHRONOSHUB_ALLOW_REMOTE_API", def: "false",
			usage: "Let the app-facing listeners use addresses beyond loopback. Requires CHRONOSHUB_API_TOKEN or CHRONOSHUB_API_TOKEN_FILE. The listeners do not speak TLS: the token and the events cross the network in clear text unless a service mesh with mutual TLS (or a TLS proxy in the pod) encrypts them.",
			value: boolValue{p: &c.AllowRemoteAPI}},
		{group: app, env: "CHRONOSHUB_API_TOKEN", secret: true, note: "required with CHRONOSHUB_ALLOW_REMOTE_API",
			usage: "The bearer token apps must present to the app-facing API.",
			value: secretValue{raw: &r.apiToken, src: &c.APIToken}},
		{group: app, env: "CHRONOSHUB_API_TOKEN_FILE",
			usage: "A file holding the app-facing API's bearer token, re-read when it changes.",
			value: secretFileValue{path: &r.apiTokenFile, src: &c.APIToken}},

		{group: app, env: "CHRONOSHUB_SUBSCRIPTIONS_FILE", note: "none",
			usage: subscriptionsUsage,
			value: stringValue{p: &c.SubscriptionsFile, arg: "path"}},
		{group: app, env: "CHRONOSHUB_STRICT_SUBSCRIPTIONS", def: "false",
			usage: "Let streams open only the subscriptions CHRONOSHUB_SUBSCRIPTIONS_FILE declares without push; any other name is refused (NOT_FOUND) instead of creating a subscription that replays the whole log.",
			value: boolValue{p: &c.StrictSubscriptions}},

		{group: store, env: "CHRONOSHUB_DATA_DIR", def: "./chronoshub-data",
			usage: "Where the embedded store keeps its files. Not used, and refused, with CHRONOSHUB_NATS_URL.",
			value: stringValue{p: &c.DataDir, arg: "path", check: checkNotEmpty}},
		{group: store, env: "CHRONOSHUB_NATS_URL", note: "embedded NATS in the data directory",
			usage: "An external NATS JetStream cluster (comma-separated server URLs) shared by replicas. Put credentials in CHRONOSHUB_NATS_CREDS_FILE, not in the URL.",
			value: natsURLValue{stringValue{p: &c.NATSURL, arg: "URL", check: checkNATSURL}}},
		{group: store, env: "CHRONOSHUB_NATS_CREDS_FILE", note: "none",
			usage: "A NATS credentials file for CHRONOSHUB_NATS_URL.",
			value: stringValue{p: &c.NATSCredsFile, arg: "path"}},
		{group: store, env: "CHRONOSHUB_NATS_TLS_CA_FILE", note: "the system's roots",
			usage: "The CAs (PEM) that sign the NATS servers' certificates, for CHRONOSHUB_NATS_URL; requires TLS from the servers.",
			value: stringValue{p: &c.NATSTLSCAFile, arg: "path"}},
		{group: store, env: "CHRONOSHUB_NATS_TLS_CERT_FILE", note: "none",
			usage: "The client certificate (PEM) for NATS servers that require mutual TLS; goes with CHRONOSHUB_NATS_TLS_KEY_FILE.",
			value: stringValue{p: &c.NATSTLSCertFile, arg: "path"}},
		{group: store, env: "CHRONOSHUB_NATS_TLS_KEY_FILE", note: "none",
			usage: "The client certificate's private key (PEM); goes with CHRONOSHUB_NATS_TLS_CERT_FILE.",
			value: stringValue{p: &c.NATSTLSKeyFile, arg: "path"}},
		{group: store, env: "CHRONOSHUB_NATS_DOMAIN", note: "none",
			usage: "The JetStream domain of CHRONOSHUB_NATS_URL, when the cluster has one.",
			value: stringValue{p: &c.NATSDomain, arg: "name", check: checkNATSDomain}},
		{group: store, env: "CHRONOSHUB_NATS_REPLICAS", note: "3 with CHRONOSHUB_NATS_URL, else 1",
			usage: "How many NATS servers hold each stream and bucket the sidecar creates (1 to 5). Existing ones are never changed: a sidecar whose setting differs from them refuses to start. The embedded store has one.",
			value: intValue[int]{p: &c.NATSReplicas, min: 1, max: 5}},
		{group: store, env: "CHRONOSHUB_SYNC", def: "always",
			usage: "When the embedded store fsyncs: always (every event is fsynced before the webhook answers 2xx, concurrent webhooks sharing one fsync) or an interval. In every mode an event is written to the operating system before the webhook answers 2xx, so a killed process loses nothing; with an interval, a power loss or kernel crash can take what was answered within it. Refused with CHRONOSHUB_NATS_URL, where the cluster's replication and its own sync setting decide.",
			value: syncValue{always: &c.SyncAlways, interval: &c.SyncInterval}},
		{group: store, env: "CHRONOSHUB_RETENTION", def: "168h",
			usage: "How long events are kept for delivery and replay.",
			value: durationValue{p: &c.Retention}},
		{group: store, env: "CHRONOSHUB_DUPLICATE_WINDOW", def: "24h",
			usage: "How long a webhook event id is remembered, so that ChronosHub's retries store nothing new.",
			value: durationValue{p: &c.DuplicateWindow}},
		{group: store, env: "CHRONOSHUB_LOG_MAX_BYTES", def: "0",
			usage: "The most bytes the event log may hold. 0 is automatic: embedded, half the data dir's free space at start, at most 1 GiB (JetStream reserves the cap on disk, so a larger one than the disk has fails at start); on a cluster, no cap but the cluster's own limits. When it is full, events every subscription has acknowledged are removed first; if that is not enough, webhooks get 503 with Retry-After (ChronosHub retries) and nothing unacknowledged is ever dropped to make room.",
			value: intValue[int64]{p: &c.LogMaxBytes, min: 0, max: 1 << 50}},
		{group: store, env: "CHRONOSHUB_MAX_SUBSCRIPTIONS", def: "100",
			usage: "The most subscriptions that may exist; a stream on a new one beyond it is refused (RESOURCE_EXHAUSTED).",
			value: intValue[int]{p: &c.MaxSubscriptions, min: 1, max: 10_000}},
		{group: store, env: "CHRONOSHUB_MAX_FILTERS", def: "32",
			usage: "The most event-type filters one subscription may have.",
			value: intValue[int]{p: &c.MaxFilters, min: 1, max: 1_000}},
		{group: store, env: "CHRONOSHUB_SUBSCRIPTION_IDLE_EXPIRY", def: "720h",
			usage: "How long a subscription may go without any stream before it, its position and its dead letters' listing are removed, so that unused subscriptions do not accumulate.",
			value: durationValue{p: &c.SubscriptionIdleExpiry}},
		{group: store, env: "CHRONOSHUB_ACK_WAIT", def: "30s",
			usage: "How long a delivered event may stay unacknowledged before it is offered again.",
			value: durationValue{p: &c.AckWait}},
		{group: store, env: "CHRONOSHUB_MAX_ATTEMPTS", def: "5",
			usage: "How many times an event is offered to a subscription before it moves to the dead-letter set.",
			value: intValue[int]{p: &c.MaxAttempts, min: 1, max: maxAttempts}},
		{group: store, env: "CHRONOSHUB_MAX_IN_FLIGHT", def: "256",
			usage: "The default and the cap of a stream's unacknowledged events (1 gives strict order).",
			value: intValue[int]{p: &c.MaxInFlight, min: 1, max: maxCount}},
		{group: store, env: "CHRONOSHUB_MAX_ACK_PENDING", def: "1000",
			usage: "The most unacknowledged events of a subscription across its streams; at least CHRONOSHUB_MAX_IN_FLIGHT.",
			value: intValue[int]{p: &c.MaxAckPending, min: 1, max: maxCount}},

		{group: ops, env: "CHRONOSHUB_ADMIN_ADDR", def: ":9090",
			usage: "The listener of /healthz, /readyz and /metrics.",
			value: stringValue{p: &c.AdminAddr, arg: "host:port", check: checkTCPAddr}},
		{group: ops, env: "CHRONOSHUB_PPROF", def: PprofOff,
			usage: "Serve Go's profiler (net/http/pprof) under /debug/pprof/ on the admin listener: off, loopback (refused unless CHRONOSHUB_ADMIN_ADDR is a loopback address) or any (any admin address: profiles show request data and cost CPU, keep the port private).",
			value: stringValue{p: &c.Pprof, arg: "off|loopback|any", check: checkPprof}},
		{group: ops, env: "CHRONOSHUB_CREDENTIALS_POLL_INTERVAL", def: "2s",
			usage: "How often credential and certificate files are re-read.",
			value: durationValue{p: &c.CredentialsPollInterval}},
		{group: ops, env: "CHRONOSHUB_SECRET_ROTATION_GRACE", def: "1h",
			usage: "How long previous webhook secrets stay accepted after the secret file changes.",
			value: durationValue{p: &c.SecretRotationGrace}},
		{group: ops, env: "CHRONOSHUB_STORE_FAILURE_LIMIT", def: "30s",
			usage: "How long appends to the event store may fail without a success before /healthz fails, so that the orchestrator restarts the sidecar (a full disk breaks the store until a restart). /readyz fails at the first failure.",
			value: durationValue{p: &c.StoreFailureLimit}},
		{group: ops, env: "CHRONOSHUB_SHUTDOWN_GRACE", def: "20s",
			usage: "How long shutdown waits for in-flight work before it stops anyway.",
			value: durationValue{p: &c.ShutdownGrace}},
		{group: ops, env: "CHRONOSHUB_LOG_LEVEL", def: "info",
			usage: "The minimum log level: debug, info, warn or error.",
			value: levelValue{p: &c.LogLevel}},
		{group: ops, env: "CHRONOSHUB_LOG_FORMAT", def: "json",
			usage: "How log lines are written: json (one object per line, for log collectors) or text (key=value, for people).",
			value: logFormatValue{p: &c.LogFormat}},
	}
}

// Default returns the default value of the setting named by its
// environment variable, and whether there is such a setting. Tools that
// must match the sidecar's defaults (the bench's baselines) read them here
// rather than copying them.
func Default(env string) (string, bool) {
	for _, s := range settings(&Config{}, &raw{}) {
		if s.env == env {
			return s.def, true
		}
	}
	return "", false
}

// Parse reads the configuration from args (the arguments after "serve")
// and getenv (nil means an empty environment), applies defaults, and
// validates everything together. It reads the credential and certificate
// files named. The error joins every problem found, each naming the variable
// and the flag; no error quotes a secret. For -h or --help, Parse writes the
// usage to output and returns flag.ErrHelp; nothing else is written.
func Parse(args []string, getenv func(string) string, output io.Writer) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	c := &Config{}
	r := &raw{explicit: map[string]bool{}}
	table := settings(c, r)

	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; --help is written below
	fs.Usage = func() {}
	given := map[string]string{}
	for _, s := range table {
		if s.secret {
			continue
		}
		name := s.flagName()
		record := func(v string) error { given[name] = v; return nil }
		if s.value.kind() == "" {
			fs.BoolFunc(name, s.usage, record)
		} else {
			fs.Func(name, s.usage, record)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if output != nil {
				writeUsage(output, table)
			}
			return nil, flag.ErrHelp
		}
		if hint := secretFlagHint(args, table); hint != "" {
			return nil, fmt.Errorf("%w: %s", err, hint)
		}
		return nil, fmt.Errorf("%w (see --help)", err)
	}

	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %s: serve takes only flags", quote(fs.Arg(0))))
	}
	set := map[string]bool{} // variables whose value was parsed, valid or not
	for _, s := range table {
		text, ok := given[s.flagName()]
		if ok && !s.secret {
			r.explicit[s.env] = true
		} else {
			// An explicit flag is parsed even when empty; an empty
			// variable and an empty default leave the field zero.
			if text = getenv(s.env); text == "" {
				text = s.def
			} else {
				r.explicit[s.env] = true
			}
			if text == "" {
				continue
			}
		}
		set[s.env] = true
		if err := s.value.set(text); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.label(), err))
		}
	}
	errs = append(errs, c.validate(r, set)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.WebhookMaxBodyBytesDefault = !r.explicit["CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES"]
	c.MaxPayloadBytesDefault = !r.explicit["CHRONOSHUB_MAX_PAYLOAD_BYTES"]
	return c, nil
}

// secretFlagHint returns advice when args try a flag for a secret.
func secretFlagHint(args []string, table []setting) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		for _, s := range table {
			if s.secret && name == flagFor(s.env) {
				return fmt.Sprintf("secrets are never flags: set %s, or give a file with --%s-file", s.env, name)
			}
		}
	}
	return ""
}

// validate checks what involves several settings or the file system, and
// builds the credentials. set holds the variables whose value was parsed. It
// returns every problem.
func (c *Config) validate(r *raw, set map[string]bool) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if !set["CHRONOSHUB_BASE_URL"] {
		add(errors.New("CHRONOSHUB_BASE_URL (--base-url): required: ChronosHub's base URL for inbound events"))
	}

	var err error
	c.APIKey, err = loadSecret(APIKeyName, "CHRONOSHUB_API_KEY", r.apiKey, r.apiKeyFile, "required for SendEvent")
	add(err)
	c.WebhookSecrets, err = loadSecret(WebhookSecretName, "CHRONOSHUB_WEBHOOK_SECRET", r.webhookSecret, r.webhookSecretFile, "required to verify webhooks")
	add(err)
	tokenRequired := ""
	if c.AllowRemoteAPI {
		tokenRequired = "required when CHRONOSHUB_ALLOW_REMOTE_API (--allow-remote-api) is true"
	}
	c.APIToken, err = loadSecret(APITokenName, "CHRONOSHUB_API_TOKEN", r.apiToken, r.apiTokenFile, tokenRequired)
	add(err)

	switch {
	case c.WebhookPlaintext:
		for _, f := range []struct{ label, path string }{
			{"CHRONOSHUB_TLS_CERT_FILE (--tls-cert-file)", c.TLSCertFile},
			{"CHRONOSHUB_TLS_KEY_FILE (--tls-key-file)", c.TLSKeyFile},
		} {
			if f.path != "" {
				add(fmt.Errorf("%s is set but CHRONOSHUB_WEBHOOK_PLAINTEXT (--webhook-plaintext) is true: choose TLS or plaintext", f.label))
			}
		}
	case c.TLSCertFile == "" || c.TLSKeyFile == "":
		if c.TLSCertFile == "" {
			add(errors.New("CHRONOSHUB_TLS_CERT_FILE (--tls-cert-file): required unless CHRONOSHUB_WEBHOOK_PLAINTEXT (--webhook-plaintext) is true"))
		}
		if c.TLSKeyFile == "" {
			add(errors.New("CHRONOSHUB_TLS_KEY_FILE (--tls-key-file): required unless CHRONOSHUB_WEBHOOK_PLAINTEXT (--webhook-plaintext) is true"))
		}
	default:
		c.TLSCertificate, err = credentials.NewCertificate(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			add(fmt.Errorf("CHRONOSHUB_TLS_CERT_FILE (--tls-cert-file), CHRONOSHUB_TLS_KEY_FILE (--tls-key-file): %w", err))
		}
	}

	if !c.AllowRemoteAPI {
		for _, a := range []struct{ label, addr string }{
			{"CHRONOSHUB_GRPC_ADDR (--grpc-addr)", c.GRPCAddr},
			{"CHRONOSHUB_HTTP_ADDR (--http-addr)", c.HTTPAddr},
		} {
			network, address, err := ParseListenAddr(a.addr)
			if err != nil || network != "tcp" {
				continue // reported with the setting, or a unix socket
			}
			if host, _ := splitHostPort(address); !IsLoopback(host) {
				add(fmt.Errorf("%s: %s is %w", a.label, quote(a.addr), errRemote))
			}
		}
	}
	if c.Pprof == PprofLoopback {
		if host, err := splitHostPort(c.AdminAddr); err == nil && !IsLoopback(host) {
			add(fmt.Errorf("CHRONOSHUB_PPROF (--pprof): loopback, but CHRONOSHUB_ADMIN_ADDR (--admin-addr) %s is not a loopback address: "+
				"listen on one (127.0.0.1:9090), or set CHRONOSHUB_PPROF=any to serve the profiler on any address", quote(c.AdminAddr)))
		}
	}
	add(distinctAddrs(map[string]string{
		"CHRONOSHUB_WEBHOOK_ADDR (--webhook-addr)": c.WebhookAddr,
		"CHRONOSHUB_GRPC_ADDR (--grpc-addr)":       c.GRPCAddr,
		"CHRONOSHUB_HTTP_ADDR (--http-addr)":       c.HTTPAddr,
		"CHRONOSHUB_ADMIN_ADDR (--admin-addr)":     c.AdminAddr,
	}))

	if c.SchemaDir != "" {
		if fi, err := os.Stat(c.SchemaDir); err != nil {
			add(fmt.Errorf("CHRONOSHUB_SCHEMA_DIR (--schema-dir): %w", err))
		} else if !fi.IsDir() {
			add(fmt.Errorf("CHRONOSHUB_SCHEMA_DIR (--schema-dir): %s is not a directory", c.SchemaDir))
		}
	}
	errs = append(errs, c.validateNATS(r)...)
	if c.WebhookMaxBodyMemory > 0 && c.WebhookMaxBodyMemory < c.WebhookMaxBodyBytes {
		add(fmt.Errorf("CHRONOSHUB_WEBHOOK_MAX_BODY_MEMORY (--webhook-max-body-memory): %d is less than CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES (--webhook-max-body-bytes) %d, so the largest webhook could never be read",
			c.WebhookMaxBodyMemory, c.WebhookMaxBodyBytes))
	}
	if c.MaxAckPending > 0 && c.MaxInFlight > c.MaxAckPending {
		add(fmt.Errorf("CHRONOSHUB_MAX_ACK_PENDING (--max-ack-pending): %d is less than CHRONOSHUB_MAX_IN_FLIGHT (--max-in-flight) %d, so no stream could reach its in-flight cap",
			c.MaxAckPending, c.MaxInFlight))
	}
	errs = append(errs, c.loadSubscriptions()...)
	return errs
}

// validateNATS checks the settings of an external NATS against those of the
// embedded store, and sets the replicas' default.
func (c *Config) validateNATS(r *raw) []error {
	var errs []error
	files := []struct{ env, path string }{
		{"CHRONOSHUB_NATS_CREDS_FILE", c.NATSCredsFile},
		{"CHRONOSHUB_NATS_TLS_CA_FILE", c.NATSTLSCAFile},
		{"CHRONOSHUB_NATS_TLS_CERT_FILE", c.NATSTLSCertFile},
		{"CHRONOSHUB_NATS_TLS_KEY_FILE", c.NATSTLSKeyFile},
	}
	if c.NATSURL == "" {
		for _, f := range files {
			if f.path != "" {
				errs = append(errs, fmt.Errorf("%s is set without CHRONOSHUB_NATS_URL (--nats-url): the embedded NATS needs no credentials or TLS", labelFor(f.env)))
			}
		}
		if c.NATSDomain != "" {
			errs = append(errs, fmt.Errorf("%s is set without CHRONOSHUB_NATS_URL (--nats-url): the embedded NATS has no domain", labelFor("CHRONOSHUB_NATS_DOMAIN")))
		}
		switch {
		case c.NATSReplicas == 0:
			c.NATSReplicas = 1
		case c.NATSReplicas > 1:
			errs = append(errs, fmt.Errorf("%s: %d replicas need a NATS cluster (CHRONOSHUB_NATS_URL); the embedded store is one server: use 1", labelFor("CHRONOSHUB_NATS_REPLICAS"), c.NATSReplicas))
		}
		return errs
	}

	if c.NATSReplicas == 0 {
		c.NATSReplicas = 3
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if fi, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", labelFor(f.env), err))
		} else if !fi.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("%s: %s is not a file", labelFor(f.env), f.path))
		}
	}
	if (c.NATSTLSCertFile == "") != (c.NATSTLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together: set both or neither",
			labelFor("CHRONOSHUB_NATS_TLS_CERT_FILE"), labelFor("CHRONOSHUB_NATS_TLS_KEY_FILE")))
	}
	// The embedded store's settings mean nothing to a cluster: refuse them
	// rather than let an operator believe they apply.
	if r.explicit["CHRONOSHUB_SYNC"] {
		errs = append(errs, fmt.Errorf("%s is set with CHRONOSHUB_NATS_URL (--nats-url): it applies to the embedded store only; with an external cluster, durability comes from the cluster's replication (CHRONOSHUB_NATS_REPLICAS) and the servers' own sync setting (jetstream.sync_interval)", labelFor("CHRONOSHUB_SYNC")))
	}
	if r.explicit["CHRONOSHUB_DATA_DIR"] {
		errs = append(errs, fmt.Errorf("%s is set with CHRONOSHUB_NATS_URL (--nats-url): it holds the embedded store only, and the sidecar keeps nothing on disk with an external cluster (nor checks a store for damage: the cluster's replicas do)", labelFor("CHRONOSHUB_DATA_DIR")))
	}
	c.SyncAlways, c.SyncInterval, c.DataDir = false, 0, ""
	return errs
}

// labelFor names a non-secret setting by its variable and flag.
func labelFor(env string) string {
	return env + " (--" + flagFor(env) + ")"
}

// loadSecret builds a credential from its variable (value) or its file
// (path), which are exclusive. required, when not empty, makes one of them
// required and says why.
func loadSecret(name, env, value, path, required string) (*credentials.Source, error) {
	fileLabel := env + "_FILE (--" + flagFor(env+"_FILE") + ")"
	switch {
	case value != "" && path != "":
		return nil, fmt.Errorf("%s and %s are both set: set one", env, fileLabel)
	case value != "":
		src := credentials.NewValue(name, value)
		if len(src.Values()) == 0 {
			return nil, fmt.Errorf("%s holds no value", env)
		}
		return src, nil
	case path != "":
		src, err := openSecretFile(name, path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fileLabel, err)
		}
		return src, nil
	case required != "":
		return nil, fmt.Errorf("%s or %s: %s", env, fileLabel, required)
	}
	return nil, nil
}

// openSecretFile reads a credential file: webhook secrets rotate (their
// previous values stay accepted for CHRONOSHUB_SECRET_ROTATION_GRACE); the
// API key and the bearer token are replaced at once.
func openSecretFile(name, path string) (*credentials.Source, error) {
	if name == WebhookSecretName {
		return credentials.NewRotatingFile(name, path)
	}
	return credentials.NewFile(name, path)
}

// distinctAddrs reports listeners given the same address. Port 0 (any free
// port) never clashes.
func distinctAddrs(addrs map[string]string) error {
	byAddr := map[string][]string{}
	for label, a := range addrs {
		if strings.HasSuffix(a, ":0") || a == "" {
			continue
		}
		byAddr[a] = append(byAddr[a], label)
	}
	var errs []error
	for _, a := range slices.Sorted(maps.Keys(byAddr)) {
		if labels := byAddr[a]; len(labels) > 1 {
			slices.Sort(labels)
			errs = append(errs, fmt.Errorf("%s: the same address %s", strings.Join(labels, " and "), quote(a)))
		}
	}
	return errors.Join(errs...)
}

// LogValue implements slog.LogValuer: every setting's effective value, keyed
// by its variable's name without CHRONOSHUB_ in lower case, for the start-up
// log line. Secrets show as "REDACTED" when given in a variable, and as their
// file's path when given as a file.
func (c *Config) LogValue() slog.Value {
	table := settings(c, &raw{})
	attrs := make([]slog.Attr, 0, len(table))
	for _, s := range table {
		attrs = append(attrs, slog.Attr{Key: s.logKey(), Value: s.value.show()})
	}
	return slog.GroupValue(attrs...)
}
