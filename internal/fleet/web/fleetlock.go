package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/coord/fleetlock"
	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/store"
)

// The FleetLock protocol (Zincati's client, airlock's server): POST
// /v1/pre-reboot takes a reboot slot of the client's group, POST
// /v1/steady-state gives it back. Both need the header
// fleet-lock-protocol: true and the body {"client_params": {"id", "group"}};
// 200 is success, anything else failure with {"kind", "value"}. As in the
// protocol (and airlock), these endpoints carry no credentials.

// fleetLockStatus is the HTTP status of each error kind. A full semaphore
// is 409 Conflict: the request was fine, the slots are taken (the
// protocol only asks for 4xx/5xx).
var fleetLockStatus = map[string]int{
	fleetlock.KindBadHeader:     http.StatusBadRequest,
	fleetlock.KindBadParams:     http.StatusBadRequest,
	fleetlock.KindTooLarge:      http.StatusRequestEntityTooLarge,
	fleetlock.KindSemaphoreFull: http.StatusConflict,
	fleetlock.KindTooManyGroups: http.StatusConflict,
	fleetlock.KindLockFailed:    http.StatusInternalServerError,
	fleetlock.KindUnlockFailed:  http.StatusInternalServerError,
}

func writeFleetLockError(w http.ResponseWriter, e *fleetlock.Error) {
	code, ok := fleetLockStatus[e.Kind]
	if !ok {
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(e)
}

// readFleetLock checks the header and reads and validates the body.
func readFleetLock(w http.ResponseWriter, r *http.Request) (fleetlock.Params, *fleetlock.Error) {
	if v := strings.TrimSpace(r.Header.Get(fleetlock.Header)); !strings.EqualFold(v, "true") {
		return fleetlock.Params{}, &fleetlock.Error{Kind: fleetlock.KindBadHeader,
			Value: fmt.Sprintf("header fleet-lock-protocol is %q, want \"true\" (FleetLock requests must set it)", v)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fleetlock.MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fleetlock.Params{}, &fleetlock.Error{Kind: fleetlock.KindTooLarge, Value: fmt.Sprintf("request body larger than %d bytes", fleetlock.MaxBody)}
		}
		return fleetlock.Params{}, &fleetlock.Error{Kind: fleetlock.KindBadParams, Value: "reading request body: " + err.Error()}
	}
	var req fleetlock.Request
	if err := json.Unmarshal(body, &req); err != nil {
		return fleetlock.Params{}, &fleetlock.Error{Kind: fleetlock.KindBadParams,
			Value: `request body is not {"client_params": {"id": "…", "group": "…"}}: ` + err.Error()}
	}
	p := req.ClientParams
	if err := fleetlock.ValidateID(p.ID); err != nil {
		return p, &fleetlock.Error{Kind: fleetlock.KindBadParams, Value: "client_params.id: " + err.Error()}
	}
	if err := fleetlock.ValidateGroup(p.Group); err != nil {
		return p, &fleetlock.Error{Kind: fleetlock.KindBadParams, Value: "client_params.group: " + err.Error()}
	}
	return p, nil
}

func (s *Server) handlePreReboot(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.latency.WithLabelValues("fleetlock").Observe(time.Since(start).Seconds()) }()
	p, ferr := readFleetLock(w, r)
	if ferr != nil {
		s.fleetLockFailed(w, "pre-reboot", p, ferr)
		return
	}
	var res fleet.LockResult
	now := s.cfg.Now()
	l, err := s.st.UpdateRebootLock(r.Context(), p.Group, func(cur fleet.RebootLock) (fleet.RebootLock, error) {
		next, rr := cur.Lock(p.ID, now)
		res = rr
		return next, nil
	})
	if errors.Is(err, store.ErrTooManyGroups) {
		s.fleetLockFailed(w, "pre-reboot", p, &fleetlock.Error{Kind: fleetlock.KindTooManyGroups,
			Value: fmt.Sprintf("the server already has %d reboot groups; use an existing group", fleet.MaxRebootGroups)})
		return
	}
	if err != nil {
		s.log.Error("fleet: FleetLock pre-reboot failed", "group", p.Group, "id", p.ID, "err", err)
		s.fleetLockFailed(w, "pre-reboot", p, &fleetlock.Error{Kind: fleetlock.KindLockFailed, Value: "the server could not update the semaphore; see its log"})
		return
	}
	s.metrics.fleetLock.WithLabelValues("pre-reboot", res.String()).Inc()
	switch res {
	case fleet.LockFull:
		writeFleetLockError(w, &fleetlock.Error{Kind: fleetlock.KindSemaphoreFull,
			Value: fmt.Sprintf("semaphore of group %s currently full, all %d slots are locked already", p.Group, l.Max)})
		return
	case fleet.LockGranted:
		s.log.Info("fleet: reboot slot granted", "group", p.Group, "id", p.ID, "holders", len(l.Holders), "max", l.Max)
		_ = s.st.AddActivity(r.Context(), fleet.Activity{MachineID: p.ID, Severity: fleet.SeverityInfo,
			Message: fmt.Sprintf("reboot slot of group %s taken by %s (%d of %d held)", p.Group, p.ID, len(l.Holders), l.Max)})
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleSteadyState(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.latency.WithLabelValues("fleetlock").Observe(time.Since(start).Seconds()) }()
	p, ferr := readFleetLock(w, r)
	if ferr != nil {
		s.fleetLockFailed(w, "steady-state", p, ferr)
		return
	}
	held := false
	l, err := s.st.UpdateRebootLock(r.Context(), p.Group, func(cur fleet.RebootLock) (fleet.RebootLock, error) {
		next, h := cur.Unlock(p.ID)
		held = h
		return next, nil
	})
	if err != nil {
		s.log.Error("fleet: FleetLock steady-state failed", "group", p.Group, "id", p.ID, "err", err)
		s.fleetLockFailed(w, "steady-state", p, &fleetlock.Error{Kind: fleetlock.KindUnlockFailed, Value: "the server could not update the semaphore; see its log"})
		return
	}
	result := "not-held"
	if held {
		result = "released"
		s.log.Info("fleet: reboot slot released", "group", p.Group, "id", p.ID, "holders", len(l.Holders), "max", l.Max)
		_ = s.st.AddActivity(r.Context(), fleet.Activity{MachineID: p.ID, Severity: fleet.SeverityInfo,
			Message: fmt.Sprintf("reboot slot of group %s released by %s (%d of %d held)", p.Group, p.ID, len(l.Holders), l.Max)})
	}
	s.metrics.fleetLock.WithLabelValues("steady-state", result).Inc()
	w.WriteHeader(http.StatusOK)
}

func (s *Server) fleetLockFailed(w http.ResponseWriter, endpoint string, p fleetlock.Params, e *fleetlock.Error) {
	s.metrics.fleetLock.WithLabelValues(endpoint, e.Kind).Inc()
	if e.Kind != fleetlock.KindLockFailed && e.Kind != fleetlock.KindUnlockFailed {
		s.log.Warn("fleet: FleetLock request refused", "endpoint", endpoint, "group", p.Group, "id", p.ID, "kind", e.Kind, "err", e.Value)
	}
	writeFleetLockError(w, e)
}

// RebootLockRequest is the admin form of a group's semaphore.
type RebootLockRequest struct {
	MaxHolders *int `json:"max_holders"`
}

func lockGroup(r *http.Request) (string, error) {
	g := r.PathValue("group")
	if err := fleetlock.ValidateGroup(g); err != nil {
		return "", errf(400, "reboot group: %v", err)
	}
	return g, nil
}

func (s *Server) apiListRebootLocks(w http.ResponseWriter, r *http.Request) error {
	ls, err := s.st.ListRebootLocks(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, 200, nonNil(ls))
}

func (s *Server) apiGetRebootLock(w http.ResponseWriter, r *http.Request) error {
	g, err := lockGroup(r)
	if err != nil {
		return err
	}
	l, err := s.st.RebootLock(r.Context(), g)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, l)
}

func (s *Server) apiSetRebootLock(w http.ResponseWriter, r *http.Request) error {
	g, err := lockGroup(r)
	if err != nil {
		return err
	}
	var b RebootLockRequest
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if b.MaxHolders == nil {
		return errf(400, `request body: want {"max_holders": N}`)
	}
	if err := fleet.ValidateLockMax(*b.MaxHolders); err != nil {
		return errf(400, "%v", err)
	}
	l, err := s.st.SetRebootLockMax(r.Context(), g, *b.MaxHolders)
	if err != nil {
		return err
	}
	_ = s.st.AddActivity(r.Context(), fleet.Activity{Severity: fleet.SeverityInfo,
		Message: fmt.Sprintf("reboot group %s now allows %d concurrent reboots", g, l.Max)})
	return writeJSON(w, 200, l)
}

// apiReleaseRebootLock frees a holder's slot (locksmithctl unlock): for a
// node that died holding it.
func (s *Server) apiReleaseRebootLock(w http.ResponseWriter, r *http.Request) error {
	g, err := lockGroup(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	held := false
	l, err := s.st.UpdateRebootLock(r.Context(), g, func(cur fleet.RebootLock) (fleet.RebootLock, error) {
		next, h := cur.Unlock(id)
		held = h
		return next, nil
	})
	if err != nil {
		return err
	}
	if !held {
		return fmt.Errorf("%s does not hold a reboot slot of group %s: %w", id, g, store.ErrNotFound)
	}
	_ = s.st.AddActivity(r.Context(), fleet.Activity{MachineID: id, Severity: fleet.SeverityWarning,
		Message: fmt.Sprintf("reboot slot of group %s held by %s released by an administrator", g, id)})
	return writeJSON(w, 200, l)
}
