package omaha

import (
	"strconv"
	"strings"
)

// Event types and results update_engine sends (go-omaha's names).
const (
	EventUpdateComplete         = 3
	EventUpdateDownloadStarted  = 13
	EventUpdateDownloadFinished = 14

	ResultError         = 0
	ResultSuccess       = 1
	ResultSuccessReboot = 2
)

// Error codes and flags carried in errorcode (update_engine's
// ActionExitCode | flags).
const (
	CodeRollback      = 44
	FlagDevMode       = 1 << 31
	FlagResumed       = 1 << 30
	FlagTestImage     = 1 << 29
	FlagTestOmahaURL  = 1 << 28
	codeFlagsMask     = FlagDevMode | FlagResumed | FlagTestImage | FlagTestOmahaURL
	maxErrorCodeDigit = 10
)

// ErrorCode splits an errorcode attribute into the action code and its
// flags. Unparseable input yields ok=false.
func ErrorCode(s string) (code uint32, flags uint32, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, 0, true
	}
	if len(s) > maxErrorCodeDigit+1 {
		return 0, 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<32-1 {
		// Some clients print the flagged value as a signed int32.
		if err == nil && n < 0 && n >= -(1<<31) {
			u := uint32(int32(n))
			return u &^ codeFlagsMask, u & codeFlagsMask, true
		}
		return 0, 0, false
	}
	u := uint32(n)
	return u &^ codeFlagsMask, u & codeFlagsMask, true
}

// eventKnown is the whitelist of (type, result) pairs the server acts on;
// everything else (e.g. update_engine's 3/9 "deferred") is acknowledged
// and dropped, as Nebraska does.
func eventKnown(typ, result int) bool {
	switch {
	case typ == EventUpdateComplete && (result == ResultError || result == ResultSuccess || result == ResultSuccessReboot):
		return true
	case typ == EventUpdateDownloadStarted && result == ResultSuccess:
		return true
	case typ == EventUpdateDownloadFinished && result == ResultSuccess:
		return true
	case typ == 800 && result == ResultSuccess:
		return true
	}
	return false
}

// KnownEvent reports whether the server acts on this event type/result.
func KnownEvent(e *Event) bool { return eventKnown(e.Type, e.Result) }
