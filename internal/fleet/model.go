// Package fleet is the update server's domain: applications, groups,
// channels, packages, instances, the rollout policy and the pure update
// decision. Nothing here touches a database or the network; the store
// carries out what these functions decide.
package fleet

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Status is an instance's update state; the numbers are Nebraska's.
type Status int

// Instance statuses (Nebraska's values, kept for API compatibility).
const (
	StatusUndefined   Status = 1
	StatusGranted     Status = 2
	StatusError       Status = 3
	StatusComplete    Status = 4
	StatusInstalled   Status = 5
	StatusDownloaded  Status = 6
	StatusDownloading Status = 7
	StatusOnHold      Status = 8
)

var statusNames = map[Status]string{
	StatusUndefined: "undefined", StatusGranted: "granted", StatusError: "error",
	StatusComplete: "complete", StatusInstalled: "installed", StatusDownloaded: "downloaded",
	StatusDownloading: "downloading", StatusOnHold: "onhold",
}

// AllStatuses lists statuses in display order.
var AllStatuses = []Status{StatusUndefined, StatusGranted, StatusDownloading, StatusDownloaded, StatusInstalled, StatusComplete, StatusError, StatusOnHold}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status-%d", int(s))
}

// ParseStatus accepts a status name or number.
func ParseStatus(s string) (Status, bool) {
	for k, v := range statusNames {
		if strings.EqualFold(v, s) || fmt.Sprint(int(k)) == s {
			return k, true
		}
	}
	return 0, false
}

// Kind tells OS payloads from extension images.
type Kind string

// Application kinds.
const (
	KindOS        Kind = "os"
	KindExtension Kind = "extension"
)

// App is one updatable thing: the OS or an extension image.
type App struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ProductID   string    `json:"product_id,omitempty"`
	Kind        Kind      `json:"kind"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
}

// Package is one version of an app's payload for one architecture.
type Package struct {
	ID      string `json:"id"`
	AppID   string `json:"app_id"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	// URL is the codebase the file name is appended to (ends in /).
	URL      string `json:"url"`
	Filename string `json:"filename"`
	Size     int64  `json:"size"`
	// SHA1 is base64, SHA256 hex: the encodings the Omaha response needs
	// are derived from these.
	SHA1   string `json:"sha1"`
	SHA256 string `json:"sha256"`
	// Extras are extension packages (ids) delivered with this OS version.
	Extras []string `json:"extras,omitempty"`
	// Blacklist lists channels (ids) this package must never be served on.
	Blacklist []string  `json:"blacklist,omitempty"`
	Created   time.Time `json:"created"`
}

// Channel points at the package a group should run.
type Channel struct {
	ID        string `json:"id"`
	AppID     string `json:"app_id"`
	Name      string `json:"name"`
	Arch      string `json:"arch"`
	PackageID string `json:"package_id,omitempty"`
	// Floors are package ids every node must pass through (mandatory
	// intermediate versions).
	Floors  []string  `json:"floors,omitempty"`
	Created time.Time `json:"created"`
}

// Group is a set of instances that share a track, an architecture, a
// channel and a rollout policy.
type Group struct {
	ID        string    `json:"id"`
	AppID     string    `json:"app_id"`
	Name      string    `json:"name"`
	Track     string    `json:"track"`
	Arch      string    `json:"arch"`
	ChannelID string    `json:"channel_id,omitempty"`
	Policy    Policy    `json:"policy"`
	Created   time.Time `json:"created"`
}

// Instance is one node's state for one app.
type Instance struct {
	AppID     string    `json:"app_id"`
	MachineID string    `json:"machine_id"`
	GroupID   string    `json:"group_id"`
	Version   string    `json:"version"`
	Status    Status    `json:"status"`
	IP        string    `json:"ip,omitempty"`
	Alias     string    `json:"alias,omitempty"`
	OEM       string    `json:"oem,omitempty"`
	LastCheck time.Time `json:"last_check"`
	// GrantedVersion and GrantedAt describe the last grant; InProgress is
	// true from a grant until completion, failure, reset or timeout.
	GrantedVersion string    `json:"granted_version,omitempty"`
	GrantedAt      time.Time `json:"granted_at,omitzero"`
	InProgress     bool      `json:"in_progress"`
	// GrantedGroup is the group whose counters the grant occupies; the
	// node may report another track before it finishes.
	GrantedGroup string `json:"granted_group,omitempty"`
	// Pinned holds the instance on one version whatever the channel says.
	Pinned  string    `json:"pinned,omitempty"`
	Created time.Time `json:"created"`
}

// EventRecord is a stored event of an instance.
type EventRecord struct {
	AppID           string    `json:"app_id"`
	MachineID       string    `json:"machine_id"`
	Type            int       `json:"type"`
	Result          int       `json:"result"`
	ErrorCode       string    `json:"error_code,omitempty"`
	PreviousVersion string    `json:"previous_version,omitempty"`
	Version         string    `json:"version"`
	Created         time.Time `json:"created"`
}

// Severity of an activity entry.
type Severity string

// Activity severities.
const (
	SeveritySuccess Severity = "success"
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Activity is one line of the audit and rollout log.
type Activity struct {
	ID        int64     `json:"id"`
	AppID     string    `json:"app_id,omitempty"`
	GroupID   string    `json:"group_id,omitempty"`
	MachineID string    `json:"machine_id,omitempty"`
	Version   string    `json:"version,omitempty"`
	Severity  Severity  `json:"severity"`
	Message   string    `json:"message"`
	Created   time.Time `json:"created"`
}

// Duration is a time.Duration that reads and writes "90s", "1h".
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "1h30m" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string like \"1h\" or seconds, got %s", b)
		}
		*d = Duration(n * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
