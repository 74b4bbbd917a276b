// Package omaha is the Omaha 3.0 update protocol as update_engine and
// Nebraska speak it: request and response types, a bounded decoder for
// untrusted request bodies, and a client that poses as update_engine (used
// by the fleet simulator and tests).
package omaha

import (
	"encoding/xml"
	"strings"
)

// Request is one POST body from a node.
type Request struct {
	XMLName        xml.Name `xml:"request"`
	Protocol       string   `xml:"protocol,attr"`
	Version        string   `xml:"version,attr,omitempty"`
	UpdaterVersion string   `xml:"updaterversion,attr,omitempty"`
	InstallSource  string   `xml:"installsource,attr,omitempty"`
	IsMachine      string   `xml:"ismachine,attr,omitempty"`
	RequestID      string   `xml:"requestid,attr,omitempty"`
	SessionID      string   `xml:"sessionid,attr,omitempty"`
	OS             *OS      `xml:"os"`
	Apps           []*App   `xml:"app"`
}

// OS describes the node's operating system; update_engine sends no arch.
type OS struct {
	Platform string `xml:"platform,attr,omitempty"`
	Version  string `xml:"version,attr,omitempty"`
	SP       string `xml:"sp,attr,omitempty"`
	Arch     string `xml:"arch,attr,omitempty"`
}

// App is one application the node reports on: the OS itself or an
// extension image.
type App struct {
	ID              string       `xml:"appid,attr"`
	Version         string       `xml:"version,attr,omitempty"`
	Track           string       `xml:"track,attr,omitempty"`
	Board           string       `xml:"board,attr,omitempty"`
	BootID          string       `xml:"bootid,attr,omitempty"`
	MachineID       string       `xml:"machineid,attr,omitempty"`
	MachineAlias    string       `xml:"machinealias,attr,omitempty"`
	OEM             string       `xml:"oem,attr,omitempty"`
	OEMVersion      string       `xml:"oemversion,attr,omitempty"`
	AlephVersion    string       `xml:"alephversion,attr,omitempty"`
	Lang            string       `xml:"lang,attr,omitempty"`
	MultiManifestOK string       `xml:"multi_manifest_ok,attr,omitempty"`
	Ping            *Ping        `xml:"ping"`
	UpdateCheck     *UpdateCheck `xml:"updatecheck"`
	Events          []*Event     `xml:"event"`
}

// Ping is the liveness part of a request.
type Ping struct {
	Active string `xml:"active,attr,omitempty"`
}

// UpdateCheck asks whether a newer version is available.
type UpdateCheck struct {
	TargetVersionPrefix string `xml:"targetversionprefix,attr,omitempty"`
}

// Event reports progress or failure of an update step.
type Event struct {
	Type            int    `xml:"eventtype,attr"`
	Result          int    `xml:"eventresult,attr"`
	ErrorCode       string `xml:"errorcode,attr,omitempty"`
	PreviousVersion string `xml:"previousversion,attr,omitempty"`
	NextVersion     string `xml:"nextversion,attr,omitempty"`
	// HasPrevious records whether previousversion was present at all:
	// update_engine distinguishes "" (idle check) from a version.
	HasPrevious bool `xml:"-"`
}

// UnmarshalXML decodes an event and remembers whether previousversion was
// sent, which the 3/2 convention depends on.
func (e *Event) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	type plain Event
	var p plain
	if err := d.DecodeElement(&p, &start); err != nil {
		return err
	}
	*e = Event(p)
	for _, a := range start.Attr {
		if a.Name.Local == "previousversion" {
			e.HasPrevious = true
		}
	}
	return nil
}

// Response is the server's answer.
type Response struct {
	XMLName  xml.Name       `xml:"response"`
	Protocol string         `xml:"protocol,attr"`
	Server   string         `xml:"server,attr"`
	DayStart DayStart       `xml:"daystart"`
	Apps     []*ResponseApp `xml:"app"`
}

// DayStart is required by the protocol; update_engine ignores its value.
type DayStart struct {
	ElapsedSeconds string `xml:"elapsed_seconds,attr"`
}

// ResponseApp answers one requested app, children in Nebraska's order.
type ResponseApp struct {
	ID          string               `xml:"appid,attr"`
	Status      string               `xml:"status,attr"`
	Ping        *StatusOnly          `xml:"ping"`
	UpdateCheck *ResponseUpdateCheck `xml:"updatecheck"`
	Events      []*StatusOnly        `xml:"event"`
}

// StatusOnly is an element carrying only status="…" (ping, event acks).
type StatusOnly struct {
	Status string `xml:"status,attr"`
}

// ResponseUpdateCheck carries the update decision.
type ResponseUpdateCheck struct {
	Status string `xml:"status,attr"`
	// PollInterval (seconds) overrides update_engine's next check delay;
	// Strata sends it with throttled noupdate answers.
	PollInterval string      `xml:"PollInterval,attr,omitempty"`
	URLs         []URL       `xml:"urls>url"`
	Manifests    []*Manifest `xml:"manifest"`
}

// URL is a codebase the payload names are appended to.
type URL struct {
	Codebase string `xml:"codebase,attr"`
}

// Manifest describes one version to install.
type Manifest struct {
	Version  string    `xml:"version,attr"`
	Packages []Package `xml:"packages>package"`
	Actions  []Action  `xml:"actions>action"`
}

// Package is one payload. Hash is base64(SHA-1) (update_engine does not
// check it); HashSHA256 is hex, and only set on extra packages.
type Package struct {
	Name       string `xml:"name,attr"`
	Hash       string `xml:"hash,attr"`
	HashSHA256 string `xml:"hash_sha256,attr,omitempty"`
	Size       int64  `xml:"size,attr"`
	Required   bool   `xml:"required,attr"`
}

// Action is the postinstall action; SHA256 is base64 of the payload's
// SHA-256, which update_engine requires.
type Action struct {
	Event                 string `xml:"event,attr"`
	SHA256                string `xml:"sha256,attr,omitempty"`
	DisablePayloadBackoff string `xml:"DisablePayloadBackoff,attr,omitempty"`
}

// Status values understood by update_engine: anything else on an
// updatecheck is its error 34, followed by a bogus failure event.
const (
	StatusOK       = "ok"
	StatusNoUpdate = "noupdate"
	// App statuses for requests the server cannot place.
	StatusUnknownApp     = "error-unknownApplication"
	StatusInvalidVersion = "error-invalidVersion"
)

// NormalizeAppID returns the canonical form of an app id: trimmed,
// braces removed, lower case. Product ids (non-UUID aliases) are lower
// cased too.
func NormalizeAppID(id string) string {
	id = strings.TrimSpace(id)
	id = strings.TrimPrefix(id, "{")
	id = strings.TrimSuffix(id, "}")
	return strings.ToLower(strings.TrimSpace(id))
}

// Arch resolves the node's architecture the way Nebraska does: the
// CoreOS board name first, then the <os arch>, else amd64.
func Arch(app *App, os *OS) string {
	switch strings.ToLower(app.Board) {
	case "amd64-usr":
		return "amd64"
	case "arm64-usr":
		return "arm64"
	}
	if os != nil {
		switch strings.ToLower(os.Arch) {
		case "x64", "amd64", "x86_64":
			return "amd64"
		case "arm", "arm64", "aarch64":
			return "arm64"
		case "x86":
			return "x86"
		}
	}
	return "amd64"
}
