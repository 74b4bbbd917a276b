package sdparse

import (
	"strings"
	"testing"
)

func TestBoolean(t *testing.T) {
	tests := []struct {
		in      string
		want    bool
		wantErr bool
	}{
		{"1", true, false}, {"yes", true, false}, {"y", true, false}, {"true", true, false},
		{"t", true, false}, {"on", true, false}, {"YES", true, false}, {"True", true, false}, {"oN", true, false},
		{"0", false, false}, {"no", false, false}, {"n", false, false}, {"false", false, false},
		{"f", false, false}, {"off", false, false}, {"NO", false, false}, {"FaLsE", false, false}, {"OFF", false, false},
		{"", false, true}, {" yes", false, true}, {"yes ", false, true}, {"2", false, true},
		{"enable", false, true}, {"yess", false, true}, {"01", false, true},
		{"yeſ", false, true}, // U+017F folds to "s" in Unicode, not in ASCII
		{"\u212a", false, true},
	}
	for _, tt := range tests {
		got, err := Boolean(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("Boolean(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzBoolean(f *testing.F) {
	for _, s := range []string{"1", "yes", "Y", "TRUE", "0", "off", "", "maybe", "yeſ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Boolean(s)
		lower := strings.ToLower(s)
		isTrue := lower == "1" || lower == "yes" || lower == "y" || lower == "true" || lower == "t" || lower == "on"
		isFalse := lower == "0" || lower == "no" || lower == "n" || lower == "false" || lower == "f" || lower == "off"
		// strings.ToLower maps some non-ASCII runes to ASCII (e.g. the
		// Kelvin sign to "k"); Boolean must only fold ASCII.
		ascii := true
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				ascii = false
			}
		}
		if !ascii {
			isTrue, isFalse = false, false
		}
		switch {
		case isTrue && (err != nil || !got), isFalse && (err != nil || got):
			t.Fatalf("Boolean(%q) = %v, %v", s, got, err)
		case !isTrue && !isFalse && err == nil:
			t.Fatalf("Boolean(%q) accepted", s)
		}
	})
}
