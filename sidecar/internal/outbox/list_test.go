package outbox

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestList(t *testing.T) {
	t.Parallel()
	hub := newChronosHub(t)
	_, js := connect(t, startNATS(t, t.TempDir()))
	o := openOutbox(t, store{js: js}, hub.client(t, 3), Options{})
	if got, err := o.List(t.Context(), 10); err != nil || len(got) != 0 {
		t.Fatalf("List of an empty outbox = %v, %v; want none", got, err)
	}
	for i := range 5 {
		if _, err := o.Send(t.Context(), "manuscript.submitted", fmt.Appendf(nil, `{"n":%d}`, i), fmt.Sprint("key-", i)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := o.List(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range got {
		keys = append(keys, r.Key+" "+r.State.String())
		if r.EventID == "" {
			t.Errorf("record %s has no ChronosHub event id", r.Key)
		}
	}
	if diff := cmp.Diff([]string{"key-4 accepted", "key-3 accepted", "key-2 accepted"}, keys); diff != "" {
		t.Errorf("List(3) (-want +got):\n%s", diff)
	}
	// A limit under half the records: the pass keeps the newest as it goes.
	if got, err := o.List(t.Context(), 2); err != nil || len(got) != 2 || got[0].Key != "key-4" || got[1].Key != "key-3" {
		t.Errorf("List(2) = %+v, %v; want key-4, key-3", got, err)
	}
	if got, err := o.List(t.Context(), 0); err != nil || got != nil {
		t.Errorf("List(0) = %v, %v; want nil, nil", got, err)
	}
}
