package bake

import "testing"

func TestEpochFromEnv(t *testing.T) {
	for v, want := range map[string]int64{"": 0, "0": 0, "1700000000": 1700000000} {
		got, err := EpochFromEnv(func(string) string { return v })
		if err != nil || got != want {
			t.Errorf("SOURCE_DATE_EPOCH=%q: %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"-1", "yesterday", "1.5"} {
		if _, err := EpochFromEnv(func(string) string { return v }); err == nil || err.Error() != `SOURCE_DATE_EPOCH="`+v+`" is not a non-negative number of seconds` {
			t.Errorf("SOURCE_DATE_EPOCH=%q: %v", v, err)
		}
	}
}
