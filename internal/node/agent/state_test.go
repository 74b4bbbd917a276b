package agent

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/omaha"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC) // a Thursday

func TestNext(t *testing.T) {
	thu4, _ := coord.ParseWindow("Thu 04:00", "1h", time.UTC)
	pending := Journal{Phase: RebootPending}
	for _, tc := range []struct {
		name  string
		j     Journal
		s     coord.Strategy
		w     coord.Window
		want  Action
		until time.Time
	}{
		{"idle, due", Journal{Phase: Idle}, coord.Reboot, coord.Window{}, ActCheck, time.Time{}},
		{"idle, not due", Journal{Phase: Idle, NextCheck: t0.Add(time.Minute)}, coord.Reboot, coord.Window{}, ActWait, t0.Add(time.Minute)},
		{"events first", Journal{Phase: Downloading, Outbox: []Outgoing{{Seq: 1, Event: success(13)}}}, coord.Reboot, coord.Window{}, ActSendEvents, time.Time{}},
		{"downloading", Journal{Phase: Downloading}, coord.Reboot, coord.Window{}, ActDownload, time.Time{}},
		{"verifying", Journal{Phase: Verifying}, coord.Reboot, coord.Window{}, ActVerify, time.Time{}},
		{"installing", Journal{Phase: Installing}, coord.Reboot, coord.Window{}, ActInstall, time.Time{}},
		{"pending, reboot", pending, coord.Reboot, coord.Window{}, ActReboot, time.Time{}},
		{"pending, etcd", pending, coord.EtcdLock, coord.Window{}, ActTakeLock, time.Time{}},
		{"pending, etcd, held", Journal{Phase: WaitingForLock, LockHeld: true}, coord.EtcdLock, coord.Window{}, ActReboot, time.Time{}},
		{"pending, outside window", pending, coord.EtcdLock, thu4, ActWait, t0.AddDate(0, 0, 7).Add(-6 * time.Hour)},
		{"pending, off", pending, coord.Off, coord.Window{}, ActWait, time.Time{}},
		{"pending, kured held", Journal{Phase: RebootPending, LockHeld: true}, coord.Kured, coord.Window{}, ActHandOff, time.Time{}},
		{"rebooting", Journal{Phase: Rebooting}, coord.Reboot, coord.Window{}, ActWait, time.Time{}},
		{"after boot", Journal{Phase: HealthCheck}, coord.Reboot, coord.Window{}, ActHealthCheck, time.Time{}},
		{"3/2 before lock release", Journal{Phase: Idle, LockHeld: true, NextCheck: t0.Add(time.Hour), Outbox: []Outgoing{{Seq: 4, WithCheck: true}}}, coord.EtcdLock, coord.Window{}, ActCheck, time.Time{}},
		{"release lock", Journal{Phase: Idle, LockHeld: true, NextCheck: t0.Add(time.Hour)}, coord.EtcdLock, coord.Window{}, ActReleaseLock, time.Time{}},
	} {
		act, until := Next(tc.j, tc.s, tc.w, t0)
		if act != tc.want || !until.Equal(tc.until) {
			t.Errorf("%s: %s until %v, want %s until %v", tc.name, act, until, tc.want, tc.until)
		}
	}
}

func TestResume(t *testing.T) {
	armed := Journal{Phase: Rebooting, Offer: &Offer{Version: "2.0.0"}, FromVersion: "1.0.0", BootedSlot: "A", TargetSlot: "B", ArmedBootID: "{boot-1}", LockHeld: true}
	// Same boot, same slot: still waiting.
	if j := Resume(armed, Observed{BootID: "{boot-1}", Booted: "A", Version: "1.0.0"}); j.Phase != RebootPending || len(j.Outbox) != 0 || !j.LockHeld {
		t.Fatalf("same boot: %+v", j)
	}
	// Booted into the new slot: health check next.
	if j := Resume(armed, Observed{BootID: "{boot-2}", Booted: "B", Version: "2.0.0"}); j.Phase != HealthCheck || len(j.Outbox) != 0 {
		t.Fatalf("new slot: %+v", j)
	}
	// New boot on the old slot: rollback, reported with the next check, not retried.
	j := Resume(armed, Observed{BootID: "{boot-2}", Booted: "A", Version: "1.0.0"})
	ev, seq := j.CheckEvent()
	if j.Phase != Idle || seq == 0 || ev.Result != 0 || ev.ErrorCode != "268435500" || len(j.Skip) != 1 || j.Skip[0] != "2.0.0" || !j.LockHeld {
		t.Fatalf("rollback: %+v, event %+v", j, ev)
	}
	if !strings.Contains(j.LastError, "rolled back") {
		t.Fatalf("rollback error %q", j.LastError)
	}
	// A check in flight is forgotten; an idle journal learns its aleph version.
	if j := Resume(Journal{Phase: Checking}, Observed{Version: "1.0.0"}); j.Phase != Idle || j.Aleph != "1.0.0" {
		t.Fatalf("checking: %+v", j)
	}
}

func TestOutbox(t *testing.T) {
	var j Journal
	j.Queue(success(13), false)
	j.Queue(omaha.Event{Type: 3, Result: 2, PreviousVersion: "1.0.0", HasPrevious: true}, true)
	j.Queue(success(14), false)
	if p := j.pendingEvents(); len(p) != 2 || p[0].Event.Type != 13 || p[1].Event.Type != 14 {
		t.Fatalf("pending %+v", p)
	}
	ev, seq := j.CheckEvent()
	if seq != 2 || ev.PreviousVersion != "1.0.0" {
		t.Fatalf("check event %+v %d", ev, seq)
	}
	j.Sent(2)
	if ev, seq := j.CheckEvent(); seq != 0 || !ev.HasPrevious || ev.PreviousVersion != "" {
		t.Fatalf("idle check event %+v %d", ev, seq)
	}
	f := Fail(j, CodePayloadHashMismatch, errors.New("bad hash"), t0)
	if f.Phase != Idle || f.LastError != "bad hash" || f.Failures != 1 || !f.NextCheck.After(t0) || f.Outbox[len(f.Outbox)-1].Event.ErrorCode != "268435466" {
		t.Fatalf("fail %+v", f)
	}
}

func answer(status, version, codebase, name string, size int64, sum string) *omaha.Response {
	uc := &omaha.ResponseUpdateCheck{Status: status}
	if status == "ok" {
		uc.URLs = []omaha.URL{{Codebase: codebase}}
		uc.Manifests = []*omaha.Manifest{{Version: version,
			Packages: []omaha.Package{{Name: name, Hash: "2jmj7l5rSw0yVb/vlWAYkK/YBwk=", Size: size, Required: true}},
			Actions:  []omaha.Action{{Event: "postinstall", SHA256: sum}}}}
	}
	return &omaha.Response{Apps: []*omaha.ResponseApp{{ID: "{" + strings.ToUpper(DefaultAppID) + "}", Status: "ok", UpdateCheck: uc}}}
}

func TestParseAnswer(t *testing.T) {
	s := sha256.Sum256([]byte("payload"))
	sum := base64.StdEncoding.EncodeToString(s[:])
	good := answer("ok", "2.0.0", "http://fleet/pkgs", "usr-2.0.0.raw", 7, sum)
	ext := sha256.Sum256([]byte("ext"))
	good.Apps[0].UpdateCheck.Manifests[0].Packages = append(good.Apps[0].UpdateCheck.Manifests[0].Packages,
		omaha.Package{Name: "docker-28.raw", Hash: "2jmj7l5rSw0yVb/vlWAYkK/YBwk=", HashSHA256: hex.EncodeToString(ext[:]), Size: 3})
	res, err := ParseAnswer(good, DefaultAppID, "1.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	o := res.Offer
	if o.Version != "2.0.0" || o.Payload.URL != "http://fleet/pkgs/usr-2.0.0.raw" || o.Payload.SHA256 != hex.EncodeToString(s[:]) || len(o.Extras) != 1 || o.Extras[0].URL != "http://fleet/pkgs/docker-28.raw" || o.Extras[0].Required {
		t.Fatalf("offer %+v", o)
	}
	if res, err := ParseAnswer(good, DefaultAppID, "1.0.0", []string{"2.0.0"}); err != nil || res.Offer != nil || res.Skipped != "2.0.0" {
		t.Fatalf("skipped version: %+v %v", res, err)
	}
	no := answer("noupdate", "", "", "", 0, "")
	no.Apps[0].UpdateCheck.PollInterval = "600"
	if res, err := ParseAnswer(no, DefaultAppID, "1.0.0", nil); err != nil || res.Offer != nil || res.Poll != 10*time.Minute {
		t.Fatalf("noupdate: %+v %v", res, err)
	}
	for name, tc := range map[string]struct {
		r    *omaha.Response
		want string
	}{
		"older":          {answer("ok", "0.9.0", "http://fleet/", "u.raw", 7, sum), "not newer than the running 1.0.0"},
		"same":           {answer("ok", "1.0.0", "http://fleet/", "u.raw", 7, sum), "not newer"},
		"traversal":      {answer("ok", "2.0.0", "http://fleet/", "../../etc/shadow", 7, sum), "not a plain file name"},
		"other host":     {answer("ok", "2.0.0", "http://fleet/", "//evil.example/x", 7, sum), "not a plain file name"},
		"file codebase":  {answer("ok", "2.0.0", "file:///etc/", "shadow", 7, sum), "not an http(s) URL"},
		"no sha256":      {answer("ok", "2.0.0", "http://fleet/", "u.raw", 7, ""), "postinstall action's sha256"},
		"zero size":      {answer("ok", "2.0.0", "http://fleet/", "u.raw", 0, sum), "size 0"},
		"huge":           {answer("ok", "2.0.0", "http://fleet/", "u.raw", 1<<40, sum), "16 GiB"},
		"bad status":     {answer("error-internal", "", "", "", 0, ""), "updatecheck status \"error-internal\""},
		"bad version":    {answer("ok", "latest", "http://fleet/", "u.raw", 7, sum), "not a version"},
		"other app only": {&omaha.Response{Apps: []*omaha.ResponseApp{{ID: "x", Status: "ok"}}}, "no app"},
	} {
		_, err := ParseAnswer(tc.r, DefaultAppID, "1.0.0", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add("2.0.0", "http://fleet/", "u.raw", int64(7), "ok")
	f.Add("1", "https://x/../", "..", int64(-1), "noupdate")
	f.Fuzz(func(t *testing.T, ver, codebase, name string, size int64, status string) {
		s := sha256.Sum256([]byte(ver))
		res, err := ParseAnswer(answer(status, ver, codebase, name, size, base64.StdEncoding.EncodeToString(s[:])), DefaultAppID, "1.0.0", nil)
		if err != nil || res.Offer == nil {
			return
		}
		if want := strings.TrimSuffix(codebase, "/") + "/" + name; res.Offer.Payload.URL != want {
			t.Fatalf("URL %q, want %q", res.Offer.Payload.URL, want)
		}
		if strings.Contains(name, "/") || name == ".." {
			t.Fatalf("name %q accepted", name)
		}
	})
}

func TestFailCode(t *testing.T) {
	for err, want := range map[error]uint32{
		&download.MismatchError{}:                  CodePayloadHashMismatch,
		&download.TooLargeError{}:                  CodePayloadSizeMismatch,
		&sizeError{}:                               CodePayloadSizeMismatch,
		fmt.Errorf("write: %w", syscall.ENOSPC):    CodeDownloadWrite,
		errors.New("connection reset by peer"):     CodeDownloadTransfer,
		fmt.Errorf("x: %w", &download.HTTPError{}): CodeDownloadTransfer,
	} {
		if got := failCode(err); got != want {
			t.Errorf("%T %v: code %d, want %d", err, err, got, want)
		}
	}
}
