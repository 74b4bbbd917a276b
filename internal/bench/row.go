// Package bench measures Strata side by side with the peers it replaces
// (systemd-sysext, the sysext-bakery's mkfs calls) and with the physical
// floor, in one run, and renders the figures as docs/benchmarks.md.
package bench

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Row is one measured case: the peer's time, Strata's, and the floor
// (zero when not measured).
type Row struct {
	Group, Case         string
	Peer, Strata, Floor time.Duration
	PeerName, FloorName string
	Note                string
}

// Ratio formats a/b as "1.23×", or "–" when b is zero.
func Ratio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// Median returns the median of ds (sorting a copy).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := append([]time.Duration(nil), ds...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[len(c)/2]
}

// Fmt renders a duration in milliseconds with sensible precision.
func Fmt(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2f s", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.0f ms", ms)
	default:
		return fmt.Sprintf("%.2f ms", ms)
	}
}

// Table renders rows of one group as a markdown table.
func Table(rows []Row) string {
	var b strings.Builder
	peer, floor := "peer", "floor"
	for _, r := range rows {
		if r.PeerName != "" {
			peer = r.PeerName
		}
		if r.FloorName != "" {
			floor = r.FloorName
		}
	}
	fmt.Fprintf(&b, "| case | %s | Strata | Strata / %s | %s | Strata / floor | note |\n|---|---|---|---|---|---|---|\n", peer, peer, floor)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Case, Fmt(r.Peer), Fmt(r.Strata), Ratio(r.Strata, r.Peer), Fmt(r.Floor), Ratio(r.Strata, r.Floor), r.Note)
	}
	return b.String()
}
