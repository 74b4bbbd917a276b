package coord

import (
	"context"
	"time"
)

// Attempt is one failed try of a Lock's Acquire, which goes on retrying:
// the lock backend could not be asked (Err set: etcd or the FleetLock
// server down, a refused request), or it answered that every slot is
// taken (Err nil), which is waiting, not a fault. Holders name who holds
// the slots when the backend says so cheaply (etcd's semaphore does).
type Attempt struct {
	Err     error
	Holders []string
	// Wait is how long Acquire waits before it tries again (at most:
	// a watch may wake it sooner).
	Wait time.Duration
}

type observerKey struct{}

// WithObserver returns a context under which a Lock's Acquire reports
// every failed attempt to f before it waits for the next, so a caller
// blocked in Acquire can show why (the agent's status). f runs on
// Acquire's goroutine, between attempts; it must not block for long.
// This is httptrace's pattern: the Lock interface stays as it is.
func WithObserver(ctx context.Context, f func(Attempt)) context.Context {
	return context.WithValue(ctx, observerKey{}, f)
}

// Observe reports a to ctx's observer, if there is one. Lock backends
// call it on each failed attempt inside Acquire.
func Observe(ctx context.Context, a Attempt) {
	if f, ok := ctx.Value(observerKey{}).(func(Attempt)); ok && f != nil {
		f(a)
	}
}
