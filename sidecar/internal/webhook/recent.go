package webhook

import (
	"net/http"
	"sync"
	"time"
)

// DefaultRecentSize is how many webhooks a Recent keeps when NewRecent is
// given 0.
const DefaultRecentSize = 200

// maxRecentField cuts the client's header values a Recent keeps.
const maxRecentField = 100

// RecentWebhook is one webhook request and how it was answered. It holds
// no signature and nothing derived from a secret.
type RecentWebhook struct {
	ReceivedAt time.Time
	// EventID and EventType are the request's X-Event-Id and X-Event-Type
	// headers as sent, cut to 100 bytes; they are verified only when
	// Outcome is OutcomeStored or OutcomeDuplicate.
	EventID, EventType string
	// Outcome is one of the Outcome constants; Reason is the Observer's
	// reason label.
	Outcome, Reason string
	// Status is the HTTP status answered.
	Status int
}

// Recent keeps the most recent webhook outcomes in memory, for the
// console: a fixed-size ring, lost on restart and per process. It is safe
// for concurrent use.
type Recent struct {
	mu   sync.Mutex
	ring []RecentWebhook
	next int
	full bool
}

// NewRecent returns a Recent keeping the last size webhooks; 0 or less
// means DefaultRecentSize.
func NewRecent(size int) *Recent {
	if size <= 0 {
		size = DefaultRecentSize
	}
	return &Recent{ring: make([]RecentWebhook, size)}
}

func (r *Recent) record(req *http.Request, at time.Time, outcome, reason string, status int) {
	w := RecentWebhook{
		ReceivedAt: at,
		EventID:    cut(req.Header.Get("X-Event-Id")),
		EventType:  cut(req.Header.Get("X-Event-Type")),
		Outcome:    outcome,
		Reason:     reason,
		Status:     status,
	}
	r.mu.Lock()
	r.ring[r.next] = w
	r.next = (r.next + 1) % len(r.ring)
	r.full = r.full || r.next == 0
	r.mu.Unlock()
}

// List returns the webhooks kept, newest first.
func (r *Recent) List() []RecentWebhook {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.ring)
	}
	out := make([]RecentWebhook, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.ring[(r.next-i+len(r.ring))%len(r.ring)])
	}
	return out
}

func cut(s string) string {
	if len(s) > maxRecentField {
		return s[:maxRecentField]
	}
	return s
}
