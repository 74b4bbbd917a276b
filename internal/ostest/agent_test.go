package ostest

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/client"
	"github.com/stratalinux/strata/internal/fleet/web"
	"github.com/stratalinux/strata/internal/fsimage"
	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/node/agent"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/slot"
	"github.com/stratalinux/strata/internal/testutil/fleettest"
	"github.com/stratalinux/strata/internal/testutil/qemutest"
)

// agentInit is the test OS's init when the node agent drives the update:
// network up on QEMU's user network, the agent's config pointing at the
// host's strata serve (10.0.2.2), one `strata agent check --once`, then a
// shell. The agent reboots the guest itself (STRATA_REBOOT_COMMAND), which
// ends QEMU (-no-reboot).
const agentInit = `#!/usr/bin/busybox sh
[ -e /bin ] || /usr/bin/busybox ln -s usr/bin /bin
export PATH=/usr/bin
. /usr/lib/os-release
echo "GUEST-UP version=$VERSION_ID uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "HELLO=$(cat /usr/share/hello/version 2>/dev/null || echo none)"
mkdir -p /etc/strata /var/lib /tmp
[ -s /etc/machine-id ] || echo 5747a7a0c0ffee000000000000000001 > /etc/machine-id
cat > /etc/strata/update.conf <<EOF
SERVER=http://10.0.2.2:@OMAHA_PORT@/v1/update/
GROUP=stable
REBOOT_STRATEGY=fleetlock
FLEETLOCK_URL=http://10.0.2.2:@OMAHA_PORT@
STRATA_HEALTH_CHECK=test -e /usr/lib/strata-test/healthy
STRATA_REBOOT_COMMAND=reboot -f
STRATA_POLL_INTERVAL=1h
EOF
ifconfig lo 127.0.0.1 up
ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up
route add default gw 10.0.2.2
strata agent check --once
echo "AGENT-RC=$?"
exec sh
`

// fleetHost is strata serve and a file server on the host's 127.0.0.1,
// which the guest reaches as 10.0.2.2.
type fleetHost struct {
	api      *client.Client
	omaha    *httptest.Server
	files    string
	filesURL string // as the guest sees it
}

func (w *world) fleetHost() *fleetHost {
	t := w.t
	ctx := context.Background()
	dir := t.TempDir()
	h := &fleetHost{files: filepath.Join(dir, "files")}
	if err := os.MkdirAll(h.files, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := web.New(web.Config{Database: filepath.Join(dir, "fleet.db"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Refresh: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.omaha = httptest.NewServer(s)
	fs := httptest.NewServer(http.FileServer(http.Dir(h.files)))
	t.Cleanup(func() { h.omaha.Close(); fs.Close(); s.Close() })
	u, _ := url.Parse(fs.URL)
	h.filesURL = "http://10.0.2.2:" + u.Port() + "/"
	tok, hash := web.NewToken()
	if _, err := s.Store().CreateToken(ctx, "test", hash); err != nil {
		t.Fatal(err)
	}
	h.api = client.New(h.omaha.URL, tok, nil)
	return h
}

func (h *fleetHost) port() string {
	u, _ := url.Parse(h.omaha.URL)
	return u.Port()
}

// publish puts file into the file server and returns its package.
func (h *fleetHost) pkg(t *testing.T, src, version string, extras ...string) fleet.Package {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(src)
	if err := os.WriteFile(filepath.Join(h.files, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	s1, s256 := sha1.Sum(b), sha256.Sum256(b)
	return fleet.Package{Version: version, Arch: "amd64", URL: h.filesURL, Filename: name, Size: int64(len(b)),
		SHA1: base64.StdEncoding.EncodeToString(s1[:]), SHA256: hex.EncodeToString(s256[:]), Extras: extras}
}

// sysext makes an erofs system extension "hello" whose
// /usr/share/hello/version says version.
func (w *world) sysext(version string) string {
	t := w.t
	tree := filepath.Join(w.dir, "hello-tree-"+version)
	for p, c := range map[string]string{
		"usr/lib/extension-release.d/extension-release.hello": "ID=strata\nSYSEXT_LEVEL=1\n",
		"usr/share/hello/version":                             version + "\n",
	} {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(w.dir, "hello-"+version+"-x86-64.raw")
	fw, _ := fsimage.New("erofs")
	if err := fw.Write(context.Background(), tree, out, fsimage.Options{Seed: "hello-" + version}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAgentUpdatesNodeInQEMU: a node booted from a baked disk (with a
// baked-in extension merged by the initrd) runs the agent against strata
// serve on the host: it takes 2.0.0 under the group's policy with an
// extension riding along, takes the FleetLock slot before rebooting,
// boots B, passes its health check, commits, and the server shows the
// instance complete with the lock free. A second node is offered a 3.0.0
// whose health check fails: it rolls back to A by itself and the server
// sees the rollback.
func TestAgentUpdatesNodeInQEMU(t *testing.T) {
	w := setup(t, "virtio_net")
	ctx := context.Background()
	h := w.fleetHost()
	w.init = strings.ReplaceAll(agentInit, "@OMAHA_PORT@", h.port())

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	osApp := agent.DefaultAppID
	_, err := h.api.CreateApp(ctx, fleet.App{ID: osApp, Name: "strata-os"})
	must(err)
	_, err = h.api.CreateApp(ctx, fleet.App{Name: "hello", Kind: fleet.KindExtension})
	must(err)
	ext, err := h.api.AddPackage(ctx, "hello", h.pkg(t, w.sysext("2"), "2"))
	must(err)
	p1 := w.payload("1.0.0", true)
	_, err = h.api.AddPackage(ctx, "strata-os", h.pkg(t, p1, "1.0.0"))
	must(err)
	p2 := w.payload("2.0.0", true)
	_, err = h.api.AddPackage(ctx, "strata-os", h.pkg(t, p2, "2.0.0", ext.ID))
	must(err)
	p3 := w.payload("3.0.0", false)
	_, err = h.api.AddPackage(ctx, "strata-os", h.pkg(t, p3, "3.0.0"))
	must(err)
	_, err = h.api.CreateChannel(ctx, "strata-os", web.ChannelRequest{Name: "stable", Arch: "amd64", Version: "2.0.0"})
	must(err)
	pol := fleet.DefaultPolicy()
	_, err = h.api.CreateGroup(ctx, "strata-os", web.GroupRequest{Name: "prod", Track: "stable", Arch: "amd64", Channel: "stable", Policy: &pol})
	must(err)

	hello1 := w.sysext("1")
	disk := filepath.Join(w.dir, "node.img")
	sizes := osimage.Sizes{USR: 64 * osimage.MiB, Root: 160 * osimage.MiB, ESP: 64 * osimage.MiB}
	must(osimage.Bake(ctx, osimage.Request{Usr: w.usrTree("1.0.0", true), Kernel: w.host.Kernel, Initrd: w.initrd, Version: "1.0.0",
		Sysext: []string{"hello:" + hello1}, Sizes: sizes, Output: disk}))
	const mid = "5747a7a0c0ffee000000000000000001"

	// Boot 1, slot A: the baked extension (bake_flatcar_image.sh's layout: the image in /opt/extensions/,
	// /etc/extensions/hello.raw linking to it) is merged through the link; the agent installs
	// 2.0.0 into B, takes the lock and reboots.
	m := w.bootNet("agent-1-A", disk)
	w.expectUp(m, "1.0.0")
	if _, err := m.Expect(regexp.MustCompile(`HELLO=1\b`), time.Minute); err != nil {
		t.Fatalf("the baked-in extension was not merged at boot: %v", err)
	}
	if err := m.Wait(5 * time.Minute); err != nil {
		t.Fatalf("the agent did not reboot the node: %v", err)
	}
	w.wantSlots(disk, slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2, Tries: 1})
	if got := events(t, h, mid); !slices.Equal(got, []string{"13/1", "14/1", "3/1"}) {
		t.Fatalf("server events after the install %q", got)
	}
	if l, err := h.api.RebootLock(ctx, "default"); err != nil || len(l.Holders) != 1 || l.Holders[0].ID != mid {
		t.Fatalf("the node rebooted without holding the FleetLock slot: %+v %v", l, err)
	}

	// Boot 2, slot B: health check passes, slot committed, 3/2, lock
	// released, the extension that rode along is active.
	m = w.bootNet("agent-2-B", disk)
	w.expectUp(m, "2.0.0")
	if _, err := m.Expect(regexp.MustCompile(`AGENT-RC=0`), 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	w.run(m, "cat /usr/share/hello/version | grep -qx 2", 0)
	w.reboot(m)
	w.wantSlots(disk, slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2, Successful: true})
	if got := events(t, h, mid); !slices.Equal(got, []string{"13/1", "14/1", "3/1", "3/2<1.0.0"}) {
		t.Fatalf("server events after the commit %q", got)
	}
	d, err := h.api.Instance(ctx, "strata-os", mid)
	if err != nil || d.Instance.Status != fleet.StatusComplete || d.Instance.Version != "2.0.0" {
		t.Fatalf("server instance %+v %v, want complete on 2.0.0", d.Instance, err)
	}
	if l, err := h.api.RebootLock(ctx, "default"); err != nil || len(l.Holders) != 0 {
		t.Fatalf("lock not released after the health check: %+v %v", l, err)
	}

	// A second node on a fresh disk is offered 3.0.0, whose health check
	// fails: B is not committed, the agent rolls back and reboots, A
	// boots and the server gets the rollback (3/0).
	_, err = h.api.UpdateChannel(ctx, "strata-os", "stable", web.ChannelRequest{Name: "stable", Arch: "amd64", Version: "3.0.0"})
	must(err)
	disk2 := filepath.Join(w.dir, "node2.img")
	w.init = strings.ReplaceAll(w.init, mid, "5747a7a0c0ffee000000000000000002")
	// The machine id comes from ROOT's /etc/machine-id, written by the
	// first boot's init from the /usr tree's script: the baked disk's
	// /usr (1.0.0) carries node 1's id, so give node 2 its own /usr.
	must(osimage.Bake(ctx, osimage.Request{Usr: w.usrTree("1.0.0", true), Kernel: w.host.Kernel, Initrd: w.initrd, Version: "1.0.0",
		Sysext: []string{"hello:" + hello1}, Sizes: sizes, Output: disk2}))
	const mid2 = "5747a7a0c0ffee000000000000000002"
	m = w.bootNet("agent-3-A", disk2)
	w.expectUp(m, "1.0.0")
	if err := m.Wait(5 * time.Minute); err != nil {
		t.Fatalf("node 2 did not reboot into 3.0.0: %v", err)
	}
	m = w.bootNet("agent-4-B-unhealthy", disk2)
	w.expectUp(m, "3.0.0")
	if err := m.Wait(5 * time.Minute); err != nil {
		t.Fatalf("node 2 did not roll back: %v", err)
	}
	if next := w.nextSlot(disk2); next != "A" {
		t.Fatalf("after the failed health check the next boot takes slot %s, want A", next)
	}
	m = w.bootNet("agent-5-A-after-rollback", disk2)
	w.expectUp(m, "1.0.0")
	if _, err := m.Expect(regexp.MustCompile(`AGENT-RC=\d+`), 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	w.reboot(m)
	got := events(t, h, mid2)
	if len(got) < 4 || !slices.Equal(got[:3], []string{"13/1", "14/1", "3/1"}) || !strings.HasPrefix(got[3], "3/0") {
		t.Fatalf("node 2's events %q, want 13/1 14/1 3/1 then the rollback 3/0", got)
	}
	if l, err := h.api.RebootLock(ctx, "default"); err != nil || len(l.Holders) != 0 {
		t.Fatalf("lock still held after the rollback: %+v %v", l, err)
	}
}

// nextSlot is the slot the boot loader (or Strata's initrd) takes next.
func (w *world) nextSlot(disk string) string {
	w.t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	tb, err := gpt.Read(f, st.Size())
	if err != nil {
		w.t.Fatal(err)
	}
	next, _, err := slot.Next(slot.Slots(tb))
	if err != nil {
		w.t.Fatal(err)
	}
	return next.Name
}

// bootNet boots disk with the guest on QEMU's user network.
func (w *world) bootNet(name, disk string) *qemutest.Machine {
	w.t.Logf("boot %s", name)
	return qemutest.Start(w.t, qemutest.Config{Kernel: w.host.Kernel, Initrd: w.initrd, Append: cmdline,
		Disks: []string{disk}, Memory: "768M", NoReboot: true, Net: &qemutest.Net{}})
}

// events lists an instance's events as the server stored them, oldest
// first ("3/0:code", "3/2<previous").
func events(t *testing.T, h *fleetHost, mid string) []string {
	t.Helper()
	return fleettest.Events(t, h.api, "strata-os", mid)
}
