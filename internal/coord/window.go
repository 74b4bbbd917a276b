package coord

import (
	"fmt"
	"strings"
	"time"
)

// Window is a maintenance window in locksmith's format: a start
// ("Thu 04:00" weekly, "04:00" daily) and a length (a Go duration, under
// 24 h for a daily and under 7 days for a weekly window), in a time zone.
// The zero Window is "no window": always open, as locksmith without
// LOCKSMITHD_REBOOT_WINDOW_*.
type Window struct {
	Weekly bool
	Day    time.Weekday // for Weekly
	Hour   int
	Minute int
	Length time.Duration
	Loc    *time.Location // nil: UTC
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// ParseWindow reads LOCKSMITHD_REBOOT_WINDOW_START and _LENGTH. Both empty
// is the zero Window (always open); one without the other is an error, as
// in locksmithd. loc is the zone the start is in (nil: UTC; locksmithd uses
// the node's local time).
func ParseWindow(start, length string, loc *time.Location) (Window, error) {
	start, length = strings.TrimSpace(start), strings.TrimSpace(length)
	if start == "" && length == "" {
		return Window{}, nil
	}
	if start == "" || length == "" {
		return Window{}, fmt.Errorf("reboot window: LOCKSMITHD_REBOOT_WINDOW_START=%q and LOCKSMITHD_REBOOT_WINDOW_LENGTH=%q: set both or neither", start, length)
	}
	w := Window{Loc: loc}
	clock := start
	if f := strings.Fields(start); len(f) == 2 {
		d, ok := weekdays[strings.ToLower(f[0])]
		if !ok {
			return Window{}, fmt.Errorf("reboot window start %q: %q is not a weekday (Mon … Sun)", start, f[0])
		}
		w.Weekly, w.Day, clock = true, d, f[1]
	} else if len(f) != 1 {
		return Window{}, fmt.Errorf("reboot window start %q: want \"[Mon ]HH:MM\"", start)
	}
	h, m, ok := parseClock(clock)
	if !ok {
		return Window{}, fmt.Errorf("reboot window start %q: want \"[Mon ]HH:MM\" with HH 00-23 and MM 00-59", start)
	}
	w.Hour, w.Minute = h, m
	d, err := time.ParseDuration(length)
	if err != nil {
		return Window{}, fmt.Errorf("reboot window length %q: want a duration like 1h30m: %w", length, err)
	}
	limit := 24 * time.Hour
	if w.Weekly {
		limit = 7 * 24 * time.Hour
	}
	if d <= 0 || d >= limit {
		return Window{}, fmt.Errorf("reboot window length %q: must be more than 0 and less than %v", length, limit)
	}
	w.Length = d
	return w, nil
}

func parseClock(s string) (h, m int, ok bool) {
	hs, ms, found := strings.Cut(s, ":")
	if !found || len(hs) < 1 || len(hs) > 2 || len(ms) != 2 {
		return 0, 0, false
	}
	h, ok1 := atoi(hs)
	m, ok2 := atoi(ms)
	if !ok1 || !ok2 || h > 23 || m > 59 {
		return 0, 0, false
	}
	return h, m, true
}

func atoi(s string) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// IsZero reports whether w is "no window" (always open).
func (w Window) IsZero() bool { return w.Length == 0 }

func (w Window) loc() *time.Location {
	if w.Loc == nil {
		return time.UTC
	}
	return w.Loc
}

// starts lists the window starts from 8 days before t to 8 days after, in
// order: enough for any window of less than 7 days to contain t or to begin
// next. Starts are wall-clock times in the zone, so a DST change moves the
// window with the clock, as locksmith's time.Date arithmetic does.
func (w Window) starts(t time.Time) []time.Time {
	t = t.In(w.loc())
	y, mo, d := t.Date()
	var out []time.Time
	for off := -8; off <= 8; off++ {
		s := time.Date(y, mo, d+off, w.Hour, w.Minute, 0, 0, w.loc())
		if w.Weekly && s.Weekday() != w.Day {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Contains reports whether t is inside the window (start inclusive, end
// exclusive). The zero Window contains every t.
func (w Window) Contains(t time.Time) bool {
	if w.IsZero() {
		return true
	}
	for _, s := range w.starts(t) {
		if !t.Before(s) && t.Before(s.Add(w.Length)) {
			return true
		}
	}
	return false
}

// Next returns the window that contains t, or else the first one that
// begins after t. For the zero Window it returns t, t.
func (w Window) Next(t time.Time) (start, end time.Time) {
	if w.IsZero() {
		return t, t
	}
	for _, s := range w.starts(t) {
		e := s.Add(w.Length)
		if t.Before(e) {
			return s, e
		}
	}
	// Unreachable for a parsed window (length < 7 days).
	return t, t
}

// String gives the window back in locksmith's syntax.
func (w Window) String() string {
	if w.IsZero() {
		return "always"
	}
	s := fmt.Sprintf("%02d:%02d", w.Hour, w.Minute)
	if w.Weekly {
		s = w.Day.String()[:3] + " " + s
	}
	return s + " for " + w.Length.String() + " " + w.loc().String()
}
