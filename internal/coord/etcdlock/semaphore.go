// Package etcdlock is locksmith's reboot semaphore on etcd v3: the same key
// and JSON value as locksmith, so nodes running locksmith (through an etcd
// v2 gateway) and nodes running Strata share one semaphore. locksmith does
// compare-and-swap on the v2 ModifiedIndex; here it is a v3 Txn on the
// key's ModRevision, as locksmith's open v3 port does, sent through etcd's
// v3 JSON gateway (Client) rather than its gRPC client.
//
// Like locksmith, a slot has no TTL: a holder that dies keeps its slot
// until it starts again and releases it (locksmithd unlocks on start) or an
// operator frees it (`locksmithctl unlock ID`, here Unlock).
package etcdlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
)

// KeyPrefix is locksmith's directory for the reboot lock.
const KeyPrefix = "coreos.com/updateengine/rebootlock"

// Key is the semaphore's key for a group: locksmith's
// coreos.com/updateengine/rebootlock/semaphore, or
// …/groups/<url.QueryEscape(group)>/semaphore for a named group.
func Key(group string) string {
	if group == "" {
		return KeyPrefix + "/semaphore"
	}
	return KeyPrefix + "/groups/" + url.QueryEscape(group) + "/semaphore"
}

// Semaphore is locksmith's value: Semaphore free slots of Max, held by
// Holders (sorted machine ids).
type Semaphore struct {
	Semaphore int      `json:"semaphore"`
	Max       int      `json:"max"`
	Holders   []string `json:"holders"`
}

// Errors of the semaphore decisions.
var (
	ErrFull    = errors.New("reboot semaphore is full: all slots are held")
	ErrHeld    = errors.New("already holds a slot")
	ErrNotHeld = errors.New("holds no slot")
)

// NewSemaphore is the value locksmith creates when the key is absent:
// one slot, no holders.
func NewSemaphore() Semaphore { return Semaphore{Semaphore: 1, Max: 1, Holders: []string{}} }

// maxValue bounds what is read from etcd: a semaphore of a large fleet of
// 36-byte machine ids fits many times over.
const maxValue = 4 << 20

// Decode reads a stored value; a key written by locksmith with
// "holders":null reads as no holders.
func Decode(b []byte) (Semaphore, error) {
	if len(b) > maxValue {
		return Semaphore{}, fmt.Errorf("semaphore value of %d bytes is over %d", len(b), maxValue)
	}
	var s Semaphore
	if err := json.Unmarshal(b, &s); err != nil {
		return Semaphore{}, fmt.Errorf("semaphore value is not locksmith's JSON: %w", err)
	}
	if s.Holders == nil {
		s.Holders = []string{}
	}
	return s, nil
}

// Encode writes the value as locksmith does (holders never null).
func (s Semaphore) Encode() []byte {
	if s.Holders == nil {
		s.Holders = []string{}
	}
	b, _ := json.Marshal(s) // cannot fail: ints and strings
	return b
}

// Lock takes a slot for id: ErrHeld if id holds one already (callers treat
// that as success, as locksmithd does), ErrFull if none is free.
func (s Semaphore) Lock(id string) (Semaphore, error) {
	if slices.Contains(s.Holders, id) {
		return s, ErrHeld
	}
	if s.Semaphore <= 0 {
		return s, ErrFull
	}
	h := append(slices.Clone(s.Holders), id)
	slices.Sort(h)
	return Semaphore{Semaphore: s.Semaphore - 1, Max: s.Max, Holders: h}, nil
}

// Unlock frees id's slot: ErrNotHeld if it holds none.
func (s Semaphore) Unlock(id string) (Semaphore, error) {
	i := slices.Index(s.Holders, id)
	if i < 0 {
		return s, ErrNotHeld
	}
	h := slices.Delete(slices.Clone(s.Holders), i, i+1)
	return Semaphore{Semaphore: s.Semaphore + 1, Max: s.Max, Holders: h}, nil
}

// SetMax changes the number of slots, shifting the free count by the same
// amount as locksmith does (free may go negative while more hold than the
// new max allows; nobody new gets in until enough release).
func (s Semaphore) SetMax(n int) (Semaphore, error) {
	if n < 0 {
		return s, fmt.Errorf("semaphore max %d is negative", n)
	}
	return Semaphore{Semaphore: s.Semaphore + n - s.Max, Max: n, Holders: slices.Clone(s.Holders)}, nil
}
