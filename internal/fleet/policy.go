package fleet

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Policy is a group's rollout policy: Nebraska's knobs plus percentage
// rollouts, pausing and a configurable update window.
type Policy struct {
	UpdatesEnabled bool `json:"updates_enabled"`
	// Paused stops new grants without touching the rest of the policy.
	Paused bool `json:"paused"`
	// SafeMode grants one canary and waits for it to succeed; a failed or
	// timed-out canary pauses the group.
	SafeMode bool `json:"safe_mode"`
	// Window, when set, restricts grants to its days and hours.
	Window *Window `json:"window,omitempty"`
	// MaxUpdatesPerPeriod (0 = unlimited) grants per Period.
	MaxUpdatesPerPeriod int      `json:"max_updates_per_period"`
	Period              Duration `json:"period"`
	// MaxConcurrent (0 = unlimited) grants in progress at once.
	MaxConcurrent int `json:"max_concurrent"`
	// UpdateTimeout frees a concurrency slot whose node never reported.
	UpdateTimeout Duration `json:"update_timeout"`
	// Percent of instances (by a stable hash of machine id and version)
	// eligible for the current version; 100 = all.
	Percent float64 `json:"percent"`
	// PollInterval, when set, is sent with throttled noupdate answers so
	// nodes come back sooner than their 45-minute default.
	PollInterval Duration `json:"poll_interval,omitempty"`
}

// DefaultPolicy is what a new group gets: updates on, no limits.
func DefaultPolicy() Policy {
	return Policy{UpdatesEnabled: true, Period: Duration(time.Hour), UpdateTimeout: Duration(time.Hour), Percent: 100}
}

// Validate names the first bad field.
func (p *Policy) Validate() error {
	if p.MaxUpdatesPerPeriod < 0 || p.MaxConcurrent < 0 {
		return fmt.Errorf("policy: limits must be >= 0")
	}
	if p.MaxUpdatesPerPeriod > 0 && p.Period <= 0 {
		return fmt.Errorf("policy: max_updates_per_period needs a period > 0")
	}
	if p.UpdateTimeout < 0 || p.Period < 0 || p.PollInterval < 0 {
		return fmt.Errorf("policy: durations must be >= 0")
	}
	if p.Percent < 0 || p.Percent > 100 {
		return fmt.Errorf("policy: percent %v is not within 0..100", p.Percent)
	}
	if p.Window != nil {
		if err := p.Window.Prepare(); err != nil {
			return err
		}
	}
	return nil
}

// Window is a weekly update window in a time zone, e.g. Mon–Fri 09:00–17:00
// Europe/Berlin. End before Start wraps past midnight.
type Window struct {
	Days     []string `json:"days"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Timezone string   `json:"timezone"`

	loc        *time.Location
	days       uint8
	start, end int
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Prepare parses the window once (time zone, days, hours) so checks do
// not load zone files.
func (w *Window) Prepare() error {
	tz := w.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return fmt.Errorf("window: unknown time zone %q", w.Timezone)
	}
	w.loc = loc
	w.days = 0
	if len(w.Days) == 0 {
		w.days = 0x7f
	}
	for _, d := range w.Days {
		i := dayIndex(d)
		if i < 0 {
			return fmt.Errorf("window: unknown day %q (use mon, tue, …)", d)
		}
		w.days |= 1 << i
	}
	if w.start, err = clock(w.Start, 0); err != nil {
		return err
	}
	if w.end, err = clock(w.End, 24*60); err != nil {
		return err
	}
	if w.start == w.end {
		return fmt.Errorf("window: start and end are both %s", w.Start)
	}
	return nil
}

// dayIndex accepts "mon", "Monday", "MON" (time.Weekday numbering).
func dayIndex(d string) int {
	d = strings.ToLower(strings.TrimSpace(d))
	if len(d) < 3 {
		return -1
	}
	for i, n := range dayNames {
		if strings.HasPrefix(d, n) {
			return i
		}
	}
	return -1
}

func clock(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("window: time %q is not HH:MM", s)
	}
	return hh*60 + mm, nil
}

// Contains reports whether t falls inside the window. The day is the one
// the window opened on, so 22:00–02:00 on Fri includes Sat 01:00.
func (w *Window) Contains(t time.Time) bool {
	if w.loc == nil {
		if err := w.Prepare(); err != nil {
			return false
		}
	}
	lt := t.In(w.loc)
	minute := lt.Hour()*60 + lt.Minute()
	day := int(lt.Weekday())
	if w.start < w.end {
		return w.days&(1<<day) != 0 && minute >= w.start && minute < w.end
	}
	if minute >= w.start {
		return w.days&(1<<day) != 0
	}
	if minute < w.end {
		prev := (day + 6) % 7
		return w.days&(1<<prev) != 0
	}
	return false
}

// InPercent reports whether machineID falls into the first percent of
// the population for version. The hash covers the version so each
// release picks a different first wave.
func InPercent(machineID, version string, percent float64) bool {
	if percent >= 100 {
		return true
	}
	if percent <= 0 {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(machineID))
	h.Write([]byte{0})
	h.Write([]byte(version))
	return float64(h.Sum64()%10000) < percent*100
}
