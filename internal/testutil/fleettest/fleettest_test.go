package fleettest

import (
	"slices"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
)

func TestEventStrings(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	evs := []fleet.EventRecord{
		{Type: 3, Result: 0, ErrorCode: "boom", Created: t0},
		{Type: 3, Result: 2, PreviousVersion: "1.0.0", Created: t0.Add(time.Second)},
		{Type: 14, Result: 1, Created: t0.Add(2 * time.Second)},
	}
	want := []string{"3/0:boom", "3/2<1.0.0", "14/1"}
	if got := EventStrings(evs); !slices.Equal(got, want) {
		t.Fatalf("oldest first: %q, want %q", got, want)
	}
	// A server listing newest first gives the same, oldest first.
	rev := slices.Clone(evs)
	slices.Reverse(rev)
	if got := EventStrings(rev); !slices.Equal(got, want) {
		t.Fatalf("newest first: %q, want %q", got, want)
	}
	if got := EventStrings(nil); len(got) != 0 {
		t.Fatalf("no events: %q", got)
	}
}
