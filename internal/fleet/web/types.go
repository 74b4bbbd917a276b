package web

import "github.com/stratalinux/strata/internal/fleet"

// The admin API's request and answer shapes that are not fleet model
// values themselves; fleet/client speaks the API through these, so the
// contract is written once.

// InstancePage is one page of a group's instances
// (GET /api/apps/{app}/groups/{group}/instances).
type InstancePage struct {
	Total     int              `json:"total"`
	Instances []fleet.Instance `json:"instances"`
}

// InstanceDetail is one instance with its recent events
// (GET /api/apps/{app}/instances/{machine}).
type InstanceDetail struct {
	Events   []fleet.EventRecord `json:"events"`
	Instance fleet.Instance      `json:"instance"`
}

// PinRequest holds an instance on Version; an empty Version unpins
// (PUT /api/apps/{app}/instances/{machine}/pin).
type PinRequest struct {
	Version string `json:"version"`
}

// Pin is the answer to a PinRequest.
type Pin struct {
	MachineID string `json:"machine_id"`
	Pinned    string `json:"pinned"`
}
