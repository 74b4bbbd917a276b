package coord

import (
	"strings"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return l
}

func TestParseWindow(t *testing.T) {
	for _, c := range []struct {
		start, length string
		want          Window
		err           string
	}{
		{"", "", Window{}, ""},
		{"04:00", "1h30m", Window{Hour: 4, Length: 90 * time.Minute}, ""},
		{"4:05", "30m", Window{Hour: 4, Minute: 5, Length: 30 * time.Minute}, ""},
		{"Thu 04:00", "1h", Window{Weekly: true, Day: time.Thursday, Hour: 4, Length: time.Hour}, ""},
		{"sunday 23:30", "2h", Window{Weekly: true, Day: time.Sunday, Hour: 23, Minute: 30, Length: 2 * time.Hour}, ""},
		{"Sat 22:00", "144h", Window{Weekly: true, Day: time.Saturday, Hour: 22, Length: 144 * time.Hour}, ""},
		{"04:00", "", Window{}, "set both or neither"},
		{"", "1h", Window{}, "set both or neither"},
		{"Xyz 04:00", "1h", Window{}, "not a weekday"},
		{"24:00", "1h", Window{}, "HH 00-23"},
		{"04:60", "1h", Window{}, "HH 00-23"},
		{"04:0", "1h", Window{}, "HH 00-23"},
		{"0400", "1h", Window{}, "HH 00-23"},
		{"Thu 04:00 x", "1h", Window{}, "want"},
		{"04:00", "soon", Window{}, "duration"},
		{"04:00", "24h", Window{}, "less than 24h"},
		{"04:00", "-1h", Window{}, "more than 0"},
		{"Mon 04:00", "168h", Window{}, "less than 168h"},
	} {
		got, err := ParseWindow(c.start, c.length, nil)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseWindow(%q, %q) error %v, want one containing %q", c.start, c.length, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseWindow(%q, %q) = %+v, %v; want %+v", c.start, c.length, got, err, c.want)
		}
	}
}

func TestWindowContainsAndNext(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 2026-12-03 is a Thursday.
	for _, c := range []struct {
		start, length string
		at            string
		in            bool
		next, end     string
	}{
		{"04:00", "1h30m", "2026-12-03 03:59", false, "2026-12-03 04:00", "2026-12-03 05:30"},
		{"04:00", "1h30m", "2026-12-03 04:00", true, "2026-12-03 04:00", "2026-12-03 05:30"},
		{"04:00", "1h30m", "2026-12-03 05:29", true, "2026-12-03 04:00", "2026-12-03 05:30"},
		{"04:00", "1h30m", "2026-12-03 05:30", false, "2026-12-04 04:00", "2026-12-04 05:30"},
		// Across midnight: 23:00 for 2 h holds 00:30 of the next day.
		{"23:00", "2h", "2026-12-04 00:30", true, "2026-12-03 23:00", "2026-12-04 01:00"},
		{"23:00", "2h", "2026-12-04 01:00", false, "2026-12-04 23:00", "2026-12-05 01:00"},
		// Across the year.
		{"23:00", "2h", "2027-01-01 00:59", true, "2026-12-31 23:00", "2027-01-01 01:00"},
		// Weekly.
		{"Thu 04:00", "1h", "2026-12-03 04:30", true, "2026-12-03 04:00", "2026-12-03 05:00"},
		{"Thu 04:00", "1h", "2026-12-03 05:00", false, "2026-12-10 04:00", "2026-12-10 05:00"},
		{"Thu 04:00", "1h", "2026-12-02 04:30", false, "2026-12-03 04:00", "2026-12-03 05:00"},
		// Week wrap: Sat 22:00 for 3 h holds Sunday 00:30.
		{"Sat 22:00", "3h", "2026-12-06 00:30", true, "2026-12-05 22:00", "2026-12-06 01:00"},
		{"Sun 23:00", "2h", "2026-12-07 00:30", true, "2026-12-06 23:00", "2026-12-07 01:00"},
		// A weekly window of nearly a week: Mon 00:00 for 6 days.
		{"Mon 00:00", "144h", "2026-12-06 00:00", false, "2026-12-07 00:00", "2026-12-13 00:00"},
		{"Mon 00:00", "144h", "2026-12-05 23:59", true, "2026-11-30 00:00", "2026-12-06 00:00"},
	} {
		w, err := ParseWindow(c.start, c.length, nil)
		if err != nil {
			t.Fatal(err)
		}
		at := utc(c.at)
		if got := w.Contains(at); got != c.in {
			t.Errorf("%q+%s Contains(%s) = %v, want %v", c.start, c.length, c.at, got, c.in)
		}
		s, e := w.Next(at)
		if !s.Equal(utc(c.next)) || !e.Equal(utc(c.end)) {
			t.Errorf("%q+%s Next(%s) = %s..%s, want %s..%s", c.start, c.length, c.at, s, e, c.next, c.end)
		}
	}
}

func TestWindowTimeZones(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	w, err := ParseWindow("Thu 04:00", "1h", berlin)
	if err != nil {
		t.Fatal(err)
	}
	// 04:30 in Berlin (UTC+1 in December) is 03:30 UTC.
	at := time.Date(2026, 12, 3, 3, 30, 0, 0, time.UTC)
	if !w.Contains(at) {
		t.Errorf("Berlin window does not contain %s", at)
	}
	if w.Contains(at.Add(time.Hour)) {
		t.Errorf("Berlin window contains %s", at.Add(time.Hour))
	}
	// The same instant seen from another zone decides the same.
	tokyo := mustLoc(t, "Asia/Tokyo")
	if !w.Contains(at.In(tokyo)) {
		t.Errorf("Berlin window does not contain %s", at.In(tokyo))
	}
	// DST: on 2026-03-29 Berlin skips 02:00-03:00; a 01:30 window of 1 h
	// lasts one real hour and ends 03:30 local wall clock.
	d, err := ParseWindow("01:30", "1h", berlin)
	if err != nil {
		t.Fatal(err)
	}
	s, e := d.Next(time.Date(2026, 3, 29, 0, 0, 0, 0, berlin))
	if want := time.Date(2026, 3, 29, 1, 30, 0, 0, berlin); !s.Equal(want) {
		t.Errorf("DST start %s, want %s", s, want)
	}
	if want := time.Date(2026, 3, 29, 3, 30, 0, 0, berlin); !e.Equal(want) {
		t.Errorf("DST end %s, want %s", e, want)
	}
	// Daily windows keep their wall-clock start across the change.
	s2, _ := d.Next(e)
	if want := time.Date(2026, 3, 30, 1, 30, 0, 0, berlin); !s2.Equal(want) {
		t.Errorf("day after DST start %s, want %s", s2, want)
	}
}

func TestZeroWindowAlwaysOpen(t *testing.T) {
	var w Window
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if !w.Contains(now) {
		t.Error("zero window is closed")
	}
	if s, e := w.Next(now); !s.Equal(now) || !e.Equal(now) {
		t.Errorf("zero window Next = %s, %s", s, e)
	}
}

func FuzzParseWindow(f *testing.F) {
	f.Add("Thu 04:00", "1h30m", int64(0))
	f.Add("23:59", "23h59m", int64(1e9))
	f.Add("Sun 00:00", "167h", int64(-1e12))
	f.Fuzz(func(t *testing.T, start, length string, unix int64) {
		w, err := ParseWindow(start, length, nil)
		if err != nil {
			return
		}
		at := time.Unix(unix%(1<<40), 0).UTC()
		s, e := w.Next(at)
		if w.IsZero() {
			return
		}
		if !e.After(at) || e.Sub(s) != w.Length {
			t.Fatalf("%q+%q Next(%s) = %s..%s", start, length, at, s, e)
		}
		if w.Contains(at) != !at.Before(s) {
			t.Fatalf("%q+%q Contains(%s) disagrees with Next %s..%s", start, length, at, s, e)
		}
	})
}
