package fleet

import (
	"testing"
	"time"
)

func TestRebootLockSemaphore(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	l := NewRebootLock("workers")
	l.Max = 2

	l1, r := l.Lock("a", t0)
	if r != LockGranted || len(l1.Holders) != 1 || l1.Holders[0] != (RebootLockHolder{ID: "a", Since: t0}) {
		t.Fatalf("first lock: %v %+v", r, l1)
	}
	if len(l.Holders) != 0 {
		t.Fatalf("Lock modified its receiver: %+v", l)
	}
	// Recursive: asking again keeps the slot and its since.
	l2, r := l1.Lock("a", t0.Add(time.Hour))
	if r != LockHeld || len(l2.Holders) != 1 || !l2.Holders[0].Since.Equal(t0) {
		t.Fatalf("recursive lock: %v %+v", r, l2)
	}
	l3, r := l2.Lock("b", t0)
	if r != LockGranted || l3.Free() != 0 {
		t.Fatalf("second slot: %v %+v", r, l3)
	}
	l4, r := l3.Lock("c", t0)
	if r != LockFull || len(l4.Holders) != 2 || l4.Holds("c") {
		t.Fatalf("full: %v %+v", r, l4)
	}
	// Case-sensitive ids.
	if _, r := l3.Lock("A", t0); r != LockFull {
		t.Fatalf("id A is not a: %v", r)
	}
	l5, held := l4.Unlock("a")
	if !held || l5.Holds("a") || !l5.Holds("b") || len(l4.Holders) != 2 {
		t.Fatalf("unlock: %v %+v (before %+v)", held, l5, l4)
	}
	l6, held := l5.Unlock("a")
	if held || len(l6.Holders) != 1 {
		t.Fatalf("unlock if held, not holding: %v %+v", held, l6)
	}
	// Lowering max below the holders keeps them, grants nothing.
	l3.Max = 1
	if _, r := l3.Lock("c", t0); r != LockFull || l3.Free() != 0 {
		t.Fatalf("over-full lock granted: %v", r)
	}
	l3.Max = 0
	if _, r := l3.Lock("a", t0); r != LockHeld {
		t.Fatalf("holder of an over-full lock: %v", r)
	}
}

func TestValidateLockMax(t *testing.T) {
	for n, ok := range map[int]bool{0: true, 1: true, MaxRebootLockMax: true, -1: false, MaxRebootLockMax + 1: false} {
		if err := ValidateLockMax(n); (err == nil) != ok {
			t.Errorf("max %d: %v", n, err)
		}
	}
}
