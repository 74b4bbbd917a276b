// Package fleetlock is the FleetLock protocol (Zincati's reboot-slot
// protocol, airlock's server): its wire types and rules, shared by the
// client here, which implements coord.Lock for REBOOT_STRATEGY=fleetlock,
// and the server in fleet/web, so both speak the same bytes.
package fleetlock

import "fmt"

// Paths relative to the server's base URL, and the guard header.
const (
	PreRebootPath   = "v1/pre-reboot"
	SteadyStatePath = "v1/steady-state"
	Header          = "fleet-lock-protocol"
	// DefaultGroup is Zincati's group when none is configured.
	DefaultGroup = "default"
)

// Request is the body of both operations.
type Request struct {
	ClientParams Params `json:"client_params"`
}

// Params identify the client (persisted per node, case-sensitive) and
// its reboot group.
type Params struct {
	ID    string `json:"id"`
	Group string `json:"group"`
}

// Error is the protocol's error body; Kind has a small, fixed set of
// values (Zincati counts them in its metrics), Value is for people.
type Error struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func (e *Error) Error() string { return e.Kind + ": " + e.Value }

// Error kinds of Strata's server. failed_lock_semaphore_full is the
// protocol document's own example.
const (
	KindBadHeader     = "invalid_fleet_lock_header"
	KindBadParams     = "invalid_client_params"
	KindTooLarge      = "request_too_large"
	KindSemaphoreFull = "failed_lock_semaphore_full"
	KindTooManyGroups = "failed_lock_too_many_groups"
	KindLockFailed    = "failed_lock"
	KindUnlockFailed  = "failed_unlock"
)

// MaxBody bounds request and error bodies; real ones are ~100 bytes.
const MaxBody = 64 << 10

// maxField bounds ids and group names: the protocol sets no limit;
// machine ids are 32 characters, node names at most 253.
const maxField = 253

// ValidateGroup checks a group: the protocol's ^[a-zA-Z0-9.-]+$, bounded.
func ValidateGroup(g string) error {
	if g == "" {
		return fmt.Errorf("group is empty (Zincati's default is %q)", DefaultGroup)
	}
	if len(g) > maxField {
		return fmt.Errorf("group is %d characters long, at most %d allowed", len(g), maxField)
	}
	for _, c := range []byte(g) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("group %q: only letters, digits, '.' and '-' are allowed", g)
		}
	}
	return nil
}

// ValidateID checks a client id: non-empty, bounded, printable ASCII
// without spaces (machine ids, node names, UUIDs).
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("id is empty (use the node's machine id)")
	}
	if len(id) > maxField {
		return fmt.Errorf("id is %d characters long, at most %d allowed", len(id), maxField)
	}
	for _, c := range []byte(id) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("id %q: only printable ASCII without spaces is allowed", id)
		}
	}
	return nil
}
