package etcdlock

import (
	"errors"
	"slices"
	"testing"
)

func TestKey(t *testing.T) {
	for g, want := range map[string]string{
		"":          "coreos.com/updateengine/rebootlock/semaphore",
		"workers":   "coreos.com/updateengine/rebootlock/groups/workers/semaphore",
		"a b/c&d":   "coreos.com/updateengine/rebootlock/groups/a+b%2Fc%26d/semaphore",
		"../escape": "coreos.com/updateengine/rebootlock/groups/..%2Fescape/semaphore",
	} {
		if got := Key(g); got != want {
			t.Errorf("Key(%q) = %q, want %q", g, got, want)
		}
	}
}

func TestSemaphoreDecisions(t *testing.T) {
	s := NewSemaphore()
	if got := string(s.Encode()); got != `{"semaphore":1,"max":1,"holders":[]}` {
		t.Fatalf("default value %s", got)
	}
	s, err := s.SetMax(3)
	if err != nil || s.Semaphore != 3 || s.Max != 3 {
		t.Fatalf("SetMax(3) = %+v, %v", s, err)
	}
	for _, id := range []string{"c", "a", "b"} {
		if s, err = s.Lock(id); err != nil {
			t.Fatalf("Lock(%s): %v", id, err)
		}
	}
	if !slices.Equal(s.Holders, []string{"a", "b", "c"}) || s.Semaphore != 0 {
		t.Fatalf("after three locks %+v", s)
	}
	if _, err := s.Lock("d"); !errors.Is(err, ErrFull) {
		t.Fatalf("fourth lock: %v, want ErrFull", err)
	}
	if _, err := s.Lock("a"); !errors.Is(err, ErrHeld) {
		t.Fatalf("re-lock: %v, want ErrHeld", err)
	}
	if _, err := s.Unlock("zz"); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("unlock of non-holder: %v, want ErrNotHeld", err)
	}
	// Shrinking below the holders leaves the free count negative, as in
	// locksmith; releases bring it back.
	s, _ = s.SetMax(1)
	if s.Semaphore != -2 {
		t.Fatalf("SetMax(1) with 3 holders = %+v", s)
	}
	if _, err := s.Unlock("b"); err != nil {
		t.Fatal(err)
	}
	s, _ = s.Unlock("b")
	if _, err := s.Lock("d"); !errors.Is(err, ErrFull) {
		t.Fatalf("lock after shrink: %v, want ErrFull", err)
	}
	s, _ = s.Unlock("a")
	s, _ = s.Unlock("c")
	if s.Semaphore != 1 || len(s.Holders) != 0 {
		t.Fatalf("all released %+v", s)
	}
	if _, err := s.SetMax(-1); err == nil {
		t.Fatal("SetMax(-1) accepted")
	}
}

func TestDecodeLocksmithValues(t *testing.T) {
	s, err := Decode([]byte(`{"semaphore":1,"max":1,"holders":null}`))
	if err != nil || s.Holders == nil || len(s.Holders) != 0 {
		t.Fatalf("null holders: %+v, %v", s, err)
	}
	s, err = Decode([]byte(`{"semaphore":0,"max":2,"holders":["m1","m2"]}`))
	if err != nil || s.Max != 2 || !slices.Equal(s.Holders, []string{"m1", "m2"}) {
		t.Fatalf("%+v, %v", s, err)
	}
	if _, err := Decode([]byte(`not json`)); err == nil {
		t.Fatal("garbage accepted")
	}
	if _, err := Decode(make([]byte, maxValue+1)); err == nil {
		t.Fatal("oversized value accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"semaphore":1,"max":1,"holders":[]}`))
	f.Add([]byte(`{"semaphore":-3,"max":0,"holders":["a","a"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		back, err := Decode(s.Encode())
		if err != nil || back.Semaphore != s.Semaphore || back.Max != s.Max || !slices.Equal(back.Holders, s.Holders) {
			t.Fatalf("round trip of %+v: %+v, %v", s, back, err)
		}
		if n, err := s.Lock("x"); err == nil && (n.Semaphore != s.Semaphore-1 || !slices.Contains(n.Holders, "x")) {
			t.Fatalf("Lock from %+v gave %+v", s, n)
		}
	})
}
