// Package fleettest reads back what a fleet server stored about a node, in
// the short form the agent tests compare against: one string an event,
// "type/result", then ":code" for an error code and "<previous" for the
// previous version ("3/0:code", "3/2<1.0.0").
package fleettest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/client"
)

// Events lists the events of instance mid of app as the server stored
// them, oldest first; it fails t when the server cannot be asked.
func Events(t testing.TB, api *client.Client, app, mid string) []string {
	t.Helper()
	d, err := api.Instance(context.Background(), app, mid)
	if err != nil {
		t.Fatalf("instance %s of %s: %v", mid, app, err)
	}
	return EventStrings(d.Events)
}

// EventStrings gives each event its short form, oldest first whichever
// order the server listed them in.
func EventStrings(evs []fleet.EventRecord) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		s := fmt.Sprintf("%d/%d", e.Type, e.Result)
		if e.ErrorCode != "" {
			s += ":" + e.ErrorCode
		}
		if e.PreviousVersion != "" {
			s += "<" + e.PreviousVersion
		}
		out = append(out, s)
	}
	if len(out) > 1 && evs[0].Created.After(evs[len(evs)-1].Created) {
		slices.Reverse(out)
	}
	return out
}
