package agent

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/client"
	"github.com/stratalinux/strata/internal/fleet/web"
	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/slot"
	"github.com/stratalinux/strata/internal/testutil/fleettest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// fleetEnv is a real strata serve on 127.0.0.1 with the OS app at 1.0.0
// and 2.0.0 (a real payload made by osimage, served by a file server,
// with an extension riding along), a baked 1.0.0 disk to copy per node.
type fleetEnv struct {
	api     *client.Client
	omaha   string
	files   string // served directory
	disk    string // pristine baked disk
	payload []byte
}

const osApp = DefaultAppID

func usrTree(t *testing.T, dir, version string) string {
	t.Helper()
	d := filepath.Join(dir, "usr-"+version)
	write(t, d, "/lib/os-release", "ID=strata\nVERSION_ID="+version+"\n")
	write(t, d, "/bin/hello", strings.Repeat("hello strata "+version+"\n", 5000))
	return d
}

func digests(b []byte) (string, string) {
	a, s := sha1.Sum(b), sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(a[:]), hex.EncodeToString(s[:])
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	privtest.RequireTools(t, "mkfs.erofs", "mkfs.ext4", "mkfs.fat", "mcopy")
	ctx := context.Background()
	dir := t.TempDir()
	e := &fleetEnv{files: filepath.Join(dir, "files"), disk: filepath.Join(dir, "disk-1.0.0.img")}
	kernel := filepath.Join(dir, "vmlinuz")
	write(t, dir, "vmlinuz", "not really a kernel")
	if err := osimage.Bake(ctx, osimage.Request{Usr: usrTree(t, dir, "1.0.0"), Kernel: kernel, Version: "1.0.0",
		Sizes: osimage.Sizes{ESP: 34 * osimage.MiB, USR: 32 * osimage.MiB, OEM: 8 * osimage.MiB, Root: 32 * osimage.MiB}, Output: e.disk}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.files, 0o755); err != nil {
		t.Fatal(err)
	}
	pay := filepath.Join(e.files, "usr-2.0.0.raw")
	if _, err := osimage.BuildPayload(ctx, osimage.Request{Usr: usrTree(t, dir, "2.0.0"), Version: "2.0.0", Arch: "x86-64"}, pay); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.payload, err = os.ReadFile(pay); err != nil {
		t.Fatal(err)
	}
	write(t, e.files, "docker-28.0-x86-64.raw", "an extension image")

	s, err := web.New(web.Config{Database: filepath.Join(dir, "fleet.db"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Refresh: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	fs := httptest.NewServer(http.FileServer(http.Dir(e.files)))
	t.Cleanup(func() { hs.Close(); fs.Close(); s.Close() })
	tok, hash := web.NewToken()
	if _, err := s.Store().CreateToken(ctx, "test", hash); err != nil {
		t.Fatal(err)
	}
	e.api, e.omaha = client.New(hs.URL, tok, nil), hs.URL+"/v1/update/"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.api.CreateApp(ctx, fleet.App{ID: osApp, Name: "strata-os"})
	must(err)
	_, err = e.api.CreateApp(ctx, fleet.App{Name: "docker", Kind: fleet.KindExtension})
	must(err)
	s1, s256 := digests([]byte("an extension image"))
	ext, err := e.api.AddPackage(ctx, "docker", fleet.Package{Version: "28.0", Arch: "amd64", URL: fs.URL + "/", Filename: "docker-28.0-x86-64.raw", Size: 18, SHA1: s1, SHA256: s256})
	must(err)
	s1, s256 = digests([]byte("old"))
	_, err = e.api.AddPackage(ctx, "strata-os", fleet.Package{Version: "1.0.0", Arch: "amd64", URL: fs.URL + "/", Filename: "usr-1.0.0.raw", Size: 3, SHA1: s1, SHA256: s256})
	must(err)
	s1, s256 = digests(e.payload)
	_, err = e.api.AddPackage(ctx, "strata-os", fleet.Package{Version: "2.0.0", Arch: "amd64", URL: fs.URL + "/", Filename: "usr-2.0.0.raw",
		Size: int64(len(e.payload)), SHA1: s1, SHA256: s256, Extras: []string{ext.ID}})
	must(err)
	_, err = e.api.CreateChannel(ctx, "strata-os", web.ChannelRequest{Name: "stable", Arch: "amd64", Version: "2.0.0"})
	must(err)
	pol := fleet.DefaultPolicy()
	_, err = e.api.CreateGroup(ctx, "strata-os", web.GroupRequest{Name: "prod", Track: "stable", Arch: "amd64", Channel: "stable", Policy: &pol})
	must(err)
	return e
}

// node is one simulated machine: its root, its disk, its boot id.
type node struct {
	env     *fleetEnv
	root    string
	disk    string
	mid     string
	boot    int
	reboots int
}

var machineSeq int

func (e *fleetEnv) node(t *testing.T) *node {
	t.Helper()
	machineSeq++
	n := &node{env: e, root: t.TempDir(), mid: fmt.Sprintf("%032x", machineSeq), boot: 1}
	n.disk = filepath.Join(n.root, "disk.img")
	if out, err := exec.Command("cp", "--sparse=always", e.disk, n.disk).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	write(t, n.root, "/etc/machine-id", n.mid+"\n")
	write(t, n.root, "/usr/lib/os-release", "ID=strata\nVERSION_ID=1.0.0\n")
	n.setBoot(t, 1)
	return n
}

func (n *node) setBoot(t *testing.T, b int) {
	n.boot = b
	write(t, n.root, "/proc/sys/kernel/random/boot_id", fmt.Sprintf("00000000-0000-4000-8000-%012d\n", b))
}

// agent is the node's agent booted from slot booted.
func (n *node) agent(t *testing.T, booted string, hook func(string) error) *Agent {
	t.Helper()
	root, err := rootfs.ParseRoot(n.root)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]Layer{{"test", []byte("SERVER=" + n.env.omaha + "\nGROUP=stable\nSTRATA_HEALTH_CHECK=true\nSTRATA_POLL_INTERVAL=1h\nSTRATA_INITIAL_DELAY=0\n")}})
	if err != nil {
		t.Fatal(err)
	}
	return &Agent{Config: cfg, Root: root, Disk: n.disk, Booted: booted, Arch: "x86-64", Hook: hook,
		Reboot: func(context.Context) error { n.reboots++; return nil }, Lock: coord.NoLock{}}
}

// events lists the instance's events as the server stored them, oldest first.
func (n *node) events(t *testing.T) []string {
	t.Helper()
	return fleettest.Events(t, n.env.api, "strata-os", n.mid)
}

func (n *node) instance(t *testing.T) fleet.Instance {
	t.Helper()
	d, err := n.env.api.Instance(context.Background(), "strata-os", n.mid)
	if err != nil {
		t.Fatal(err)
	}
	return d.Instance
}

// slots reads the disk's slots: what the boot loader picks next and the records.
func (n *node) slots(t *testing.T) (string, []osimage.SlotInfo) {
	t.Helper()
	f, err := os.Open(n.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	tb, err := gpt.Read(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := slot.Next(slot.Slots(tb))
	if err != nil {
		t.Fatal(err)
	}
	return next.Name, osimage.Slots(f, tb)
}

func TestAgentUpdatesAgainstStrataServe(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	n := e.node(t)
	a := n.agent(t, "A", nil)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RunOnce(ctx, true); err != nil {
		t.Fatal(err)
	}
	j := a.Journal()
	if j.Phase != Rebooting || n.reboots != 1 || len(j.Outbox) != 0 || j.TargetSlot != "B" {
		t.Fatalf("after the update: %+v, %d reboots", j, n.reboots)
	}
	if got := n.events(t); !slices.Equal(got, []string{"13/1", "14/1", "3/1"}) {
		t.Fatalf("server events %q, want 13/1 14/1 3/1", got)
	}
	next, infos := n.slots(t)
	if next != "B" || infos[1].Record == nil || infos[1].Record.Version != "2.0.0" || infos[1].Successful {
		t.Fatalf("slot B not armed with 2.0.0: next %s %+v", next, infos[1])
	}
	if _, err := os.Stat(filepath.Join(n.root, StateDir, "extensions/2.0.0/docker-28.0-x86-64.raw")); err != nil {
		t.Fatalf("extension not staged: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(n.root, "/etc/extensions/docker.raw")); err == nil {
		t.Fatal("extension active before the new slot booted")
	}
	// A restart before the reboot changes nothing and reports nothing.
	a = n.agent(t, "A", nil)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RunOnce(ctx, true); err != nil || a.Journal().Phase != Rebooting {
		t.Fatalf("restart before reboot: %v %+v", err, a.Journal())
	}
	// "Reboot": a new boot id, slot B booted.
	n.setBoot(t, 2)
	a = n.agent(t, "B", nil)
	refreshed := 0
	a.Refresh = func(context.Context) error { refreshed++; return nil }
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Journal().Phase != HealthCheck {
		t.Fatalf("after reboot: %+v", a.Journal())
	}
	if _, err := a.RunOnce(ctx, false); err != nil {
		t.Fatal(err)
	}
	if j := a.Journal(); j.Phase != Idle || len(j.Outbox) != 0 || j.LastError != "" {
		t.Fatalf("after mark-good: %+v", j)
	}
	if got := n.events(t); !slices.Equal(got, []string{"13/1", "14/1", "3/1", "3/2<1.0.0"}) {
		t.Fatalf("server events %q", got)
	}
	if in := n.instance(t); in.Status != fleet.StatusComplete || in.Version != "2.0.0" {
		t.Fatalf("server instance %+v, want complete on 2.0.0", in)
	}
	if _, infos := n.slots(t); !infos[1].Successful {
		t.Fatalf("slot B not marked good: %+v", infos[1])
	}
	if l, err := os.Readlink(filepath.Join(n.root, "/etc/extensions/docker.raw")); err != nil || l != "/opt/extensions/docker/docker-28.0-x86-64.raw" || refreshed != 1 {
		t.Fatalf("extension not activated after the new slot booted: %q %v, %d refreshes", l, err, refreshed)
	}
	if b, err := os.ReadFile(filepath.Join(n.root, "/opt/extensions/docker/docker-28.0-x86-64.raw")); err != nil || string(b) != "an extension image" {
		t.Fatalf("extension image: %q %v", b, err)
	}
	// The next checks: noupdate, nothing changes; the journal is not
	// rewritten for them, only the check times are recorded.
	if _, err := a.RunOnce(ctx, true); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(n.root, StateDir, "state.json")
	before, _ := os.ReadFile(journal)
	if _, err := a.RunOnce(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := n.events(t); len(got) != 4 || a.Journal().Phase != Idle {
		t.Fatalf("noupdate changed something: %q %+v", got, a.Journal())
	}
	after, _ := os.ReadFile(journal)
	if string(before) != string(after) {
		t.Fatalf("an idle check rewrote the journal:\n%s\n%s", before, after)
	}
	j, err := LoadJournal(filepath.Join(n.root, StateDir))
	if err != nil || !j.LastCheck.Equal(a.Journal().LastCheck) {
		t.Fatalf("last check not recorded: %v, %v", j.LastCheck, err)
	}
}

var errCrash = errors.New("simulated crash")

// runUntil restarts the node's agent after every simulated crash until
// the journal reaches phase, checking after each crash that no slot is
// armed without a complete, verified record.
func (n *node) runUntil(t *testing.T, booted string, hook func(string) error, done func(Journal) bool) {
	t.Helper()
	ctx := context.Background()
	for try := 0; try < 8; try++ {
		a := n.agent(t, booted, hook)
		err := a.Start(ctx)
		if err == nil {
			_, err = a.RunOnce(ctx, true)
		}
		var st *Stopped
		if errors.As(err, &st) {
			next, infos := n.slots(t)
			if next == "B" && (infos[1].Record == nil || infos[1].Record.Version != "2.0.0") {
				t.Fatalf("crash after %s: slot B armed without a record: %+v", st.Step, infos[1])
			}
			continue
		}
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if done(a.Journal()) {
			return
		}
	}
	t.Fatal("the agent did not get there in 8 runs")
}

func TestAgentCrashAtEveryStep(t *testing.T) {
	e := newFleetEnv(t)
	var steps []string
	record := func(s string) error { steps = append(steps, s); return nil }
	rebooting := func(j Journal) bool { return j.Phase == Rebooting }
	settled := func(j Journal) bool { return j.Phase == Idle && len(j.Outbox) == 0 }
	clean := e.node(t)
	clean.runUntil(t, "A", record, rebooting)
	before := len(steps)
	clean.setBoot(t, 2)
	clean.runUntil(t, "B", record, settled)
	t.Logf("%d steps before the reboot, %d after: %q", before, len(steps)-before, steps)
	want := []string{"13/1", "14/1", "3/1", "3/2<1.0.0"}
	if got := clean.events(t); !slices.Equal(got, want) {
		t.Fatalf("clean run: events %q", got)
	}
	for i, step := range steps {
		t.Run(fmt.Sprintf("%02d-%s", i, step), func(t *testing.T) {
			n := e.node(t)
			calls := 0
			hook := func(string) error {
				calls++
				if calls == i+1 {
					return errCrash
				}
				return nil
			}
			n.runUntil(t, "A", hook, rebooting)
			n.setBoot(t, 2)
			n.runUntil(t, "B", hook, settled)
			if got := n.events(t); !slices.Equal(got, want) {
				t.Fatalf("events %q, want %q (none lost, none twice)", got, want)
			}
			if in := n.instance(t); in.Status != fleet.StatusComplete || in.Version != "2.0.0" {
				t.Fatalf("instance %+v", in)
			}
			if _, infos := n.slots(t); !infos[1].Successful {
				t.Fatalf("slot B not committed: %+v", infos[1])
			}
		})
	}
}

func TestAgentReportsRollback(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		health string
	}{{"boot loader fell back", "true"}, {"health check failed", "false"}} {
		t.Run(tc.name, func(t *testing.T) {
			n := e.node(t)
			write(t, n.root, "/etc/strata/update.conf", "")
			a := n.agent(t, "A", nil)
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := a.RunOnce(ctx, true); err != nil || a.Journal().Phase != Rebooting {
				t.Fatalf("update: %v %+v", err, a.Journal())
			}
			n.setBoot(t, 2)
			if tc.health == "false" {
				// The new slot boots but fails its health check: the agent
				// makes the old slot boot next and reboots.
				a = n.agent(t, "B", nil)
				a.Config.HealthChecks = []string{"echo kubelet not ready; false"}
				if err := a.Start(ctx); err != nil {
					t.Fatal(err)
				}
				_, err := a.RunOnce(ctx, false)
				if err != nil || !strings.Contains(a.Journal().LastError, "kubelet not ready") || n.reboots != 2 {
					t.Fatalf("failed health check: %v %+v, %d reboots", err, a.Journal(), n.reboots)
				}
				if next, infos := n.slots(t); next != "A" || infos[1].Successful {
					t.Fatalf("after a failed health check the next slot is %s, B %+v", next, infos[1])
				}
				n.setBoot(t, 3)
			}
			a = n.agent(t, "A", nil)
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := a.RunOnce(ctx, false); err != nil {
				t.Fatal(err)
			}
			j := a.Journal()
			if j.Phase != Idle || !slices.Contains(j.Skip, "2.0.0") || !strings.Contains(j.LastError, "rolled back") {
				t.Fatalf("after rollback: %+v", j)
			}
			if _, err := os.Lstat(filepath.Join(n.root, "/etc/extensions/docker.raw")); err == nil {
				t.Fatal("the extension of the rolled back version was activated")
			}
			want := []string{"13/1", "14/1", "3/1", "3/0:268435500"}
			if got := n.events(t); !slices.Equal(got, want) {
				t.Fatalf("events %q, want %q", got, want)
			}
			// The server offers 2.0.0 again; the node does not retry it.
			if _, err := a.RunOnce(ctx, true); err != nil {
				t.Fatal(err)
			}
			if got := n.events(t); !slices.Equal(got, want) || a.Journal().Phase != Idle {
				t.Fatalf("retried the rolled back version: %q %+v", got, a.Journal())
			}
		})
	}
}

// fakeOmaha answers every check with answer and serves files; it records
// the events nodes send.
type fakeOmaha struct {
	mu     sync.Mutex
	answer func(base string) []byte
	files  map[string][]byte
	events []string
	url    string
	// answerApp, when set, answers checks instead of answer.
	answerApp func(base string, app *omaha.App) []byte
	appEvents []string // events of apps other than the OS
	// get, when set, serves the files instead of the map.
	get      http.HandlerFunc
	requests int
}

func newFakeOmaha(t *testing.T, files map[string][]byte) *fakeOmaha {
	f := &fakeOmaha{files: files}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests++
		get := f.get
		f.mu.Unlock()
		if r.URL.Path == "/down" {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodGet && get != nil {
			get(w, r)
			return
		}
		if r.Method == http.MethodGet {
			b, ok := f.files[strings.TrimPrefix(r.URL.Path, "/files/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write(b)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, err := omaha.DecodeBytes(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.mu.Lock()
		check := false
		for _, ev := range req.Apps[0].Events {
			if ev.Type == 3 && ev.Result == 2 && ev.PreviousVersion == "" {
				continue // the idle check's 3/2
			}
			f.events = append(f.events, fmt.Sprintf("%d/%d:%s", ev.Type, ev.Result, ev.ErrorCode))
			if id := omaha.NormalizeAppID(req.Apps[0].ID); id != osApp {
				f.appEvents = append(f.appEvents, fmt.Sprintf("%s %d/%d<%s", id, ev.Type, ev.Result, ev.PreviousVersion))
			}
		}
		check = req.Apps[0].UpdateCheck != nil
		answer, answerApp := f.answer, f.answerApp
		f.mu.Unlock()
		if !check {
			w.Write([]byte(`<response protocol="3.0"><app appid="` + req.Apps[0].ID + `" status="ok"><event status="ok"></event></app></response>`))
			return
		}
		if answerApp != nil {
			w.Write(answerApp(f.url+"/files/", req.Apps[0]))
			return
		}
		w.Write(answer(f.url + "/files/"))
	}))
	t.Cleanup(hs.Close)
	f.url = hs.URL
	return f
}

// failures returns the events the server got and, of them, the 3/0 failures.
func (f *fakeOmaha) failures() (events, fails []string) {
	f.mu.Lock()
	events = slices.Clone(f.events)
	f.mu.Unlock()
	for _, ev := range events {
		if strings.HasPrefix(ev, "3/0") {
			fails = append(fails, ev)
		}
	}
	return events, fails
}

func offerXML(base, version, name string, size int64, sha256b64 string, extra string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0" server="fake"><daystart elapsed_seconds="0"></daystart><app appid="{` + osApp + `}" status="ok">
<updatecheck status="ok"><urls><url codebase="` + base + `"></url></urls><manifest version="` + version + `"><packages>
<package name="` + name + `" hash="" size="` + fmt.Sprint(size) + `" required="true"></package>` + extra + `</packages>
<actions><action event="postinstall" sha256="` + sha256b64 + `" DisablePayloadBackoff="true"></action></actions></manifest></updatecheck></app></response>`)
}

func TestAgentRefusesHostileAnswers(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	sum := sha256.Sum256(e.payload)
	good := base64.StdEncoding.EncodeToString(sum[:])
	other := sha256.Sum256([]byte("something else"))
	wrong := base64.StdEncoding.EncodeToString(other[:])
	size := int64(len(e.payload))
	f := newFakeOmaha(t, map[string][]byte{"usr-2.0.0.raw": e.payload, "short.raw": e.payload[:4096]})
	for _, tc := range []struct {
		name   string
		answer func(base string) []byte
		want   string // in the one-line error
		event  string // the 3/0 reported, "" none
	}{
		{"noupdate", func(string) []byte {
			return []byte(`<response protocol="3.0"><app appid="` + osApp + `" status="ok"><updatecheck status="noupdate"></updatecheck></app></response>`)
		}, "", ""},
		{"huge body", func(string) []byte { return []byte("<response>" + strings.Repeat(" ", 2<<20) + "</response>") }, "exceeds 1 MiB", ""},
		{"not xml", func(string) []byte { return []byte("<html>oops") }, "not Omaha XML", ""},
		{"wrong hash", func(b string) []byte { return offerXML(b, "2.0.0", "usr-2.0.0.raw", size, wrong, "") }, "SHA256", "3/0:268435466"},
		{"wrong SHA-1", func(b string) []byte {
			return bytes.Replace(offerXML(b, "2.0.0", "usr-2.0.0.raw", size, good, ""), []byte(`hash=""`), []byte(`hash="`+base64.StdEncoding.EncodeToString(other[:20])+`"`), 1)
		}, "SHA-1", "3/0:"},
		{"size smaller than served", func(b string) []byte { return offerXML(b, "2.0.0", "usr-2.0.0.raw", size-4096, good, "") }, "", "3/0:268435467"},
		{"truncated payload", func(b string) []byte { return offerXML(b, "2.0.0", "short.raw", size, good, "") }, "", "3/0:"},
		{"outside codebase", func(b string) []byte { return offerXML(b, "2.0.0", "../../etc/shadow", size, good, "") }, "not a plain file name", "3/0:268435490"},
		{"older version", func(b string) []byte { return offerXML(b, "0.9.0", "usr-2.0.0.raw", size, good, "") }, "not newer than the running 1.0.0", "3/0:268435490"},
		{"required extension fails", func(b string) []byte {
			return offerXML(b, "2.0.0", "usr-2.0.0.raw", size, good, `<package name="missing.raw" hash="" hash_sha256="`+hex.EncodeToString(other[:])+`" size="5" required="true"></package>`)
		}, "missing.raw", "3/0:268435465"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.answer, f.events = tc.answer, nil
			f.mu.Unlock()
			n := e.node(t)
			a := n.agent(t, "A", nil)
			a.Config.Server = f.url + "/v1/update/"
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			_, err := a.RunOnce(ctx, true)
			j := a.Journal()
			if tc.want == "" && tc.event == "" {
				if err != nil || j.Phase != Idle || j.LastError != "" {
					t.Fatalf("noupdate: %v %+v", err, j)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") || j.LastError != err.Error() {
					t.Fatalf("error %v (journal %q), want one line with %q", err, j.LastError, tc.want)
				}
				if j.Phase != Idle || j.Offer != nil || !j.NextCheck.After(time.Now()) {
					t.Fatalf("journal after a refused answer: %+v", j)
				}
			}
			evs, fails := f.failures()
			if tc.event == "" && len(fails) != 0 || tc.event != "" && (len(fails) != 1 || !strings.HasPrefix(fails[0], tc.event)) {
				t.Fatalf("events %q, want the failure %q", evs, tc.event)
			}
			if next, infos := n.slots(t); next != "A" || infos[1].Record != nil {
				t.Fatalf("something was armed: next %s, B %+v", next, infos[1])
			}
		})
	}
}
