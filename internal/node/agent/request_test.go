package agent

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/rootfs"
)

// updateEngineCheck is the update check of the reference digest (§1.3),
// update_engine 0.4.10's template.
const updateEngineCheck = `<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
    <os version="Chateau" platform="CoreOS" sp="4081.2.0_x86_64"></os>
    <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="4081.2.0" track="stable" bootid="{965fb4c5-ad3e-4eb7-a4c2-ca0c0e31ec84}" oem="azure" oemversion="2.9.1.1-r3" alephversion="3510.2.0" machineid="abce671d61774703ac7be60715220bfe" machinealias="" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false" >
        <ping active="1"></ping>
        <updatecheck></updatecheck>
        <event eventtype="3" eventresult="2" previousversion="3975.2.1"></event>
    </app>
</request>`

// elem is one element with its attributes, for comparing shapes.
type elem struct {
	Name  string
	Attrs map[string]string
	Kids  []*elem
}

func parseTree(t *testing.T, s string) *elem {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	var stack []*elem
	var root *elem
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			e := &elem{Name: x.Name.Local, Attrs: map[string]string{}}
			for _, a := range x.Attr {
				e.Attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Kids = append(p.Kids, e)
			} else {
				root = e
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	return root
}

// sameShape compares two trees; attributes update_engine sends with
// constant empty/false values that no server reads may be missing.
func sameShape(t *testing.T, path string, want, got *elem) {
	t.Helper()
	optional := map[string]bool{"hardware_class": true, "delta_okay": true, "machinealias": true}
	if want.Name != got.Name {
		t.Fatalf("%s: element %s, want %s", path, got.Name, want.Name)
	}
	path += "/" + want.Name
	for k, v := range want.Attrs {
		g, ok := got.Attrs[k]
		if !ok && optional[k] {
			continue
		}
		if !ok || g != v {
			t.Errorf("%s@%s = %q (present %v), want %q", path, k, g, ok, v)
		}
	}
	for k, v := range got.Attrs {
		if _, ok := want.Attrs[k]; !ok {
			t.Errorf("%s@%s=%q not sent by update_engine", path, k, v)
		}
	}
	if len(want.Kids) != len(got.Kids) {
		t.Fatalf("%s: %d children, want %d", path, len(got.Kids), len(want.Kids))
	}
	for i := range want.Kids {
		sameShape(t, path, want.Kids[i], got.Kids[i])
	}
}

// sent captures what the omaha client puts on the wire for req.
func sent(t *testing.T, req *omaha.Request) string {
	t.Helper()
	var body string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.Write([]byte(`<response protocol="3.0"><app appid="x" status="ok"></app></response>`))
	}))
	defer hs.Close()
	if _, err := (&omaha.Client{URL: hs.URL}).Do(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	return body
}

var exampleID = Identity{AppID: DefaultAppID, Version: "4081.2.0", Board: "amd64-usr", Machine: "x86_64", Track: "stable",
	MachineID: "abce671d61774703ac7be60715220bfe", BootID: "{965fb4c5-ad3e-4eb7-a4c2-ca0c0e31ec84}",
	OEM: "azure", OEMVer: "2.9.1.1-r3", Aleph: "3510.2.0"}

func TestRequestsHaveUpdateEngineShape(t *testing.T) {
	ev := omaha.Event{Type: 3, Result: 2, PreviousVersion: "3975.2.1", HasPrevious: true}
	for _, tc := range []struct {
		name string
		req  *omaha.Request
		edit func(e *elem)
	}{
		{"check after update", CheckRequest(exampleID, ev, false), func(*elem) {}},
		{"idle check", CheckRequest(exampleID, IdleEvent(), false), func(e *elem) { e.Kids[1].Kids[2].Attrs["previousversion"] = "" }},
		{"interactive", CheckRequest(exampleID, ev, true), func(e *elem) { e.Attrs["installsource"] = "ondemandupdate" }},
		{"rollback", CheckRequest(exampleID, Failure(CodeRollback), false), func(e *elem) {
			e.Kids[1].Kids[2].Attrs = map[string]string{"eventtype": "3", "eventresult": "0", "errorcode": "268435500"}
		}},
		{"event 13/1", EventRequest(exampleID, success(13)), func(e *elem) {
			e.Kids[1].Kids = []*elem{{Name: "event", Attrs: map[string]string{"eventtype": "13", "eventresult": "1"}}}
		}},
		{"ping", PingRequest(exampleID), func(e *elem) { e.Kids[1].Kids = e.Kids[1].Kids[:1] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := parseTree(t, updateEngineCheck)
			tc.edit(w)
			sameShape(t, "", w, parseTree(t, sent(t, tc.req)))
		})
	}
}

func TestLoadIdentity(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "/usr/lib/os-release", "ID=strata\nVERSION_ID=1.2.3\n")
	write(t, dir, "/etc/machine-id", "abce671d61774703ac7be60715220bfe\n")
	write(t, dir, "/proc/sys/kernel/random/boot_id", "965fb4c5-ad3e-4eb7-a4c2-ca0c0e31ec84\n")
	write(t, dir, "/usr/share/oem/oem-release", "ID=qemu\nVERSION_ID=1\n")
	root, _ := rootfs.ParseRoot(dir)
	id, err := LoadIdentity(root, Config{AppID: DefaultAppID, Group: "beta", Alias: "n1"}, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{AppID: DefaultAppID, Version: "1.2.3", Board: "arm64-usr", Machine: "aarch64", Track: "beta",
		MachineID: "abce671d61774703ac7be60715220bfe", BootID: "{965fb4c5-ad3e-4eb7-a4c2-ca0c0e31ec84}", Alias: "n1", OEM: "qemu", OEMVer: "1"}
	if id != want {
		t.Fatalf("got  %+v\nwant %+v", id, want)
	}
	write(t, dir, "/usr/share/flatcar/release", "FLATCAR_RELEASE_VERSION=4081.2.0\nFLATCAR_RELEASE_BOARD=amd64-usr\n")
	if id, _ = LoadIdentity(root, Config{}, "arm64"); id.Version != "4081.2.0" || id.Board != "amd64-usr" {
		t.Fatalf("flatcar release not preferred: %+v", id)
	}
	write(t, dir, "/etc/machine-id", "../../etc/passwd\n")
	if _, err := LoadIdentity(root, Config{}, "amd64"); err == nil || !strings.Contains(err.Error(), "32 lower-case hex") {
		t.Fatalf("bad machine id: %v", err)
	}
}
