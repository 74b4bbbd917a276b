package merge

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/osrelease"
)

func readyCandidate(provides ...string) Candidate {
	return Candidate{
		Image:    image.Image{Name: "foo", Kind: image.KindRaw, Entry: "foo.raw"},
		Release:  image.Release{Fields: map[string]string{"ID": "_any"}},
		Provides: provides,
	}
}

func TestCheckEmptyVerdict(t *testing.T) {
	host := osrelease.Host{Release: map[string]string{"ID": "debian", "VERSION_ID": "12"}}
	hs := []string{"/usr", "/opt"}
	v := Check(readyCandidate(), imageclass.Sysext, host, false, hs)
	if v.Use || v.Status != StatusEmpty || v.Reason != "provides none of /usr, /opt" {
		t.Fatalf("empty image: %+v", v)
	}
	v = Check(readyCandidate("/usr"), imageclass.Sysext, host, false, hs)
	if !v.Use || v.Status != StatusReady {
		t.Fatalf("image with /usr: %+v", v)
	}
	// An incompatible image keeps its own reason, empty or not.
	bad := readyCandidate()
	bad.Release.Fields = map[string]string{"ID": "fedora"}
	if v := Check(bad, imageclass.Sysext, host, false, hs); v.Status != StatusIncompatible {
		t.Fatalf("incompatible image: %+v", v)
	}
	// Evaluate itself still lets an empty image through: merge skips it
	// per hierarchy, as systemd does.
	if v := Evaluate([]Candidate{readyCandidate()}, imageclass.Sysext, host, false)[0]; !v.Use {
		t.Fatalf("Evaluate refused an empty image: %+v", v)
	}
}

func TestExplain(t *testing.T) {
	hs := []string{"/usr", "/opt"}
	ready := Verdict{Use: true, Status: StatusReady}
	cases := []struct {
		cand   Candidate
		v      Verdict
		merged []string
		st     Status
		reason string
	}{
		{readyCandidate("/usr"), ready, []string{"/usr"}, StatusMerged, "merged into /usr"},
		{readyCandidate("/usr", "/opt"), ready, nil, StatusReady, "would merge into /usr, /opt"},
		{readyCandidate(), ready, nil, StatusReady, "provides none of /usr, /opt"},
		{readyCandidate(), Verdict{Status: StatusNoRelease, Reason: "no release"}, nil, StatusNoRelease, "no release"},
	}
	for _, c := range cases {
		st, r := Explain(c.cand, c.v, c.merged, hs)
		if st != c.st || r != c.reason {
			t.Errorf("Explain(%v, %+v, %v) = %q %q, want %q %q", c.cand.Provides, c.v, c.merged, st, r, c.st, c.reason)
		}
	}
}

func TestNeedReload(t *testing.T) {
	for _, c := range []struct {
		wanted, skipped, noReload, otherRoot, want bool
	}{
		{true, false, false, false, true},
		{false, false, false, false, false},
		{true, true, false, false, false},
		{true, false, true, false, false},
		{true, false, false, true, false},
	} {
		if got := NeedReload(c.wanted, c.skipped, c.noReload, c.otherRoot); got != c.want {
			t.Errorf("NeedReload(%v,%v,%v,%v) = %v", c.wanted, c.skipped, c.noReload, c.otherRoot, got)
		}
	}
}

type recordingManager struct {
	booted  bool
	err     error
	reloads int
}

func (m *recordingManager) IsBooted() bool { return m.booted }
func (m *recordingManager) DaemonReload(context.Context) error {
	m.reloads++
	return m.err
}

func TestReloadAfterSaysWhatItDid(t *testing.T) {
	wants := Result{Plan: Plan{Reload: true}}
	cases := []struct {
		m         recordingManager
		res       Result
		noReload  bool
		reloads   int
		logSubstr string
	}{
		{recordingManager{booted: true}, wants, false, 1, "Reloaded the service manager."},
		{recordingManager{booted: false}, wants, false, 0, "PID 1 is not systemd."},
		{recordingManager{booted: true, err: errors.New("access denied")}, wants, false, 1, "Failed to reload the service manager: access denied"},
		{recordingManager{booted: true}, wants, true, 0, "Skipping service manager reload (--no-reload or --root)."},
		{recordingManager{booted: true}, Result{}, false, 0, ""},
	}
	for i, c := range cases {
		var buf bytes.Buffer
		e := &Engine{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		m := c.m
		e.ReloadAfter(context.Background(), c.res, c.noReload, false, &m)
		if m.reloads != c.reloads {
			t.Errorf("case %d: %d reloads, want %d", i, m.reloads, c.reloads)
		}
		if c.logSubstr == "" && buf.Len() != 0 || !strings.Contains(buf.String(), c.logSubstr) {
			t.Errorf("case %d: log %q, want %q", i, buf.String(), c.logSubstr)
		}
	}
}
