package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/rootfs"
)

// ClientVersion is the request's version and updaterversion: the agent
// poses as the update_engine release whose request shape it sends, so
// Nebraska and strata serve treat it as they treat Flatcar nodes.
const ClientVersion = "update_engine-0.4.10"

// Identity is what the node says about itself in every request, as
// update_engine's omaha_request_params gathers it.
type Identity struct {
	AppID     string // without braces
	Version   string // running /usr version
	Board     string // amd64-usr, arm64-usr
	Machine   string // uname -m style, for <os sp>
	Track     string // GROUP
	MachineID string // /etc/machine-id
	BootID    string // kernel boot_id, with braces
	Alias     string
	OEM       string
	OEMVer    string
	Aleph     string // first version this node ran
}

// CheckRequest is update_engine's update check: ping, updatecheck and
// exactly one event (the 3/2 with previousversion, or a 3/0 rollback).
func CheckRequest(id Identity, ev omaha.Event, interactive bool) *omaha.Request {
	r := baseRequest(id, interactive)
	a := r.Apps[0]
	a.Ping = &omaha.Ping{Active: "1"}
	a.UpdateCheck = &omaha.UpdateCheck{}
	a.Events = []*omaha.Event{&ev}
	return r
}

// IdleEvent is the 3/2 with previousversion="" update_engine sends on
// every check that does not follow an update.
func IdleEvent() omaha.Event {
	return omaha.Event{Type: omaha.EventUpdateComplete, Result: omaha.ResultSuccessReboot, HasPrevious: true}
}

// EventRequest is an event-only request (13/1, 14/1, 3/1, 3/0).
func EventRequest(id Identity, ev omaha.Event) *omaha.Request {
	r := baseRequest(id, false)
	r.Apps[0].Events = []*omaha.Event{&ev}
	return r
}

// PingRequest is what update_engine sends while an installed update waits
// for its reboot: only a ping, so the server does not regrant.
func PingRequest(id Identity) *omaha.Request {
	r := baseRequest(id, false)
	r.Apps[0].Ping = &omaha.Ping{Active: "1"}
	return r
}

func baseRequest(id Identity, interactive bool) *omaha.Request {
	src := "scheduler"
	if interactive {
		src = "ondemandupdate"
	}
	machine := id.Machine
	if machine == "" {
		machine = "x86_64"
	}
	return &omaha.Request{
		Protocol: "3.0", Version: ClientVersion, UpdaterVersion: ClientVersion,
		InstallSource: src, IsMachine: "1",
		OS: &omaha.OS{Version: "Chateau", Platform: "CoreOS", SP: id.Version + "_" + machine},
		Apps: []*omaha.App{{
			ID: "{" + strings.Trim(id.AppID, "{}") + "}", Version: id.Version, Track: id.Track,
			BootID: id.BootID, OEM: id.OEM, OEMVersion: id.OEMVer, AlephVersion: id.Aleph,
			MachineID: id.MachineID, MachineAlias: id.Alias, Lang: "en-US", Board: id.Board,
		}},
	}
}

var (
	machineIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	bootIDRe    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// BoardFor is update_engine's board name for a Go architecture.
func BoardFor(goarch string) (board, machine string) {
	switch goarch {
	case "arm64":
		return "arm64-usr", "aarch64"
	}
	return "amd64-usr", "x86_64"
}

// LoadIdentity reads the node's identity under root: version and board
// from /usr/share/flatcar/release or os-release, /etc/machine-id, the
// kernel's boot_id (root's /proc first, so tests can fake a reboot), and
// the OEM from /etc/oem-release or /usr/share/oem/oem-release.
func LoadIdentity(root rootfs.Root, cfg Config, goarch string) (Identity, error) {
	id := Identity{AppID: cfg.AppID, Track: cfg.Group, Alias: cfg.Alias}
	id.Board, id.Machine = BoardFor(goarch)
	if rel, err := readRelease(root, "/usr/share/flatcar/release"); err == nil {
		id.Version = rel["FLATCAR_RELEASE_VERSION"]
		if b := rel["FLATCAR_RELEASE_BOARD"]; b != "" {
			id.Board = b
		}
	}
	if id.Version == "" {
		for _, p := range []string{"/usr/lib/os-release", "/etc/os-release"} {
			if rel, err := readRelease(root, p); err == nil && rel["VERSION_ID"] != "" {
				id.Version = rel["VERSION_ID"]
				break
			}
		}
	}
	mid, err := rootfs.ReadFile(root.Path(), "/etc/machine-id", 4096)
	if err != nil {
		return id, fmt.Errorf("read machine id %s: %w (run systemd-machine-id-setup)", root.Join("/etc/machine-id"), err)
	}
	id.MachineID = strings.TrimSpace(string(mid))
	if !machineIDRe.MatchString(id.MachineID) {
		return id, fmt.Errorf("machine id in %s is %q, want 32 lower-case hex digits", root.Join("/etc/machine-id"), id.MachineID)
	}
	id.BootID = readBootID(root)
	for _, p := range []string{"/etc/oem-release", "/usr/share/oem/oem-release"} {
		if rel, err := readRelease(root, p); err == nil {
			id.OEM, id.OEMVer = rel["ID"], rel["VERSION_ID"]
			break
		}
	}
	return id, nil
}

func readRelease(root rootfs.Root, p string) (osrelease.Release, error) {
	b, err := rootfs.ReadFile(root.Path(), p, 64<<10)
	if err != nil {
		return nil, err
	}
	rel, _, err := osrelease.Parse(bytes.NewReader(b))
	return rel, err
}

// readBootID returns "{uuid}" or "" when the kernel does not say.
func readBootID(root rootfs.Root) string {
	const p = "/proc/sys/kernel/random/boot_id"
	b, err := rootfs.ReadFile(root.Path(), p, 256)
	if errors.Is(err, fs.ErrNotExist) && !root.IsHost() {
		b, err = os.ReadFile(p)
	}
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if !bootIDRe.MatchString(s) {
		return ""
	}
	return "{" + s + "}"
}
