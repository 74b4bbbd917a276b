package version

import (
	"slices"
	"strings"
	"testing"
)

// documentedOrder is the ordering example from systemd's
// strverscmp_improved() comment and the UAPI Version Format Specification.
var documentedOrder = []string{
	"122.1",
	"123~rc1-1",
	"123",
	"123-a",
	"123-a.1",
	"123-1",
	"123-1.1",
	"123^post1",
	"123.a-1",
	"123.1-1",
	"123a-1",
	"124-1",
}

func TestCompareDocumentedOrder(t *testing.T) {
	for i, a := range documentedOrder {
		for j, b := range documentedOrder {
			want := cmpInt(i, j)
			if got := Compare(a, b); got != want {
				t.Errorf("Compare(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		// Equality and empties.
		{"", "", 0},
		{"1", "1", 0},
		{"", "1", -1},
		{"", "a", -1},
		{"", "~", 1}, // "~" is older than even the end of the string
		{"", "-", -1},
		{"", ".", -1},
		{"", "_", 0}, // only a separator: both are effectively empty
		{"_+,", "", 0},

		// Leading zeros.
		{"00123", "123", 0},
		{"1.01", "1.1", 0},
		{"1.010", "1.10", 0},
		{"0", "00", 0},
		{"0", "", 1},
		{"1.0", "1", 1},
		{"1.00", "1.0", 0},

		// Numeric segments compare by value, also beyond 64 bits.
		{"2", "10", -1},
		{"99999999999999999999999", "100000000000000000000000", -1},
		{"123456789012345678901234567890", "123456789012345678901234567891", -1},

		// Numbers beat letters, letters compare bytewise, longer run is newer.
		{"1a", "11", -1},
		{"a", "1", -1},
		{"abc", "abd", -1},
		{"abc", "abcde", -1},
		{"ABC", "abc", -1},
		{"Z", "a", -1},

		// Non-version characters are separators only.
		{"123_a", "123a", 0},
		{"1+2", "12", -1}, // "1","2" vs "12": 1 < 12
		{"1,2", "1_2", 0},
		{"1_2", "1+2", 0},
		{"1 2", "1\t2", 0},
		{"1_2", "1.2", 1}, // "_" vanishes, and an attached segment beats "."
		{"1é", "1", 0},

		// Prefix characters.
		{"1~rc1", "1", -1},
		{"1~rc1", "1~rc2", -1},
		{"1~~", "1~", 1}, // after a shared "~" the end check comes first
		{"1-1", "1.1", -1},
		{"1-1", "1^1", -1},
		{"1^1", "1.1", -1},
		{"1.1", "1a", -1},
		{"1-", "1", 1}, // more segments is newer, even an empty one
		{"1.", "1", 1},
		{"1^", "1", 1},
		{"1-", "1-.", 1},
		{"1", "1~", 1},

		// Typical real-world strings.
		{"247.2-3.1.fc33.x86_64", "247.2-3.1.fc33.x86_64", 0},
		{"247.2-3.1.fc33.x86_64", "247.3-1.fc33.x86_64", -1},
		{"5.11.0-0.rc5.20210128git76c057c84d28.137.fc34", "5.11.0-1.fc34", -1},
		{"foo_1.2", "foo_1.10", -1},
		{"foo_1.2.raw", "foo_1.2", 1},
		{"debug-1", "debug_1", -1},

		// NUL ends the string, as in C.
		{"1\x00zzz", "1", 0},
		{"1\x00", "1\x002", 0},
	}
	for _, tt := range tests {
		if got := Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Compare(tt.b, tt.a); got != -tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestIsValid(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"", false},
		{"1", true},
		{"1.2.3", true},
		{"1.2.3-rc1+build.5", true},
		{"1,2_3", true},
		{"v257.4", true},
		{".", true},  // a filename *part*, so "." and ".." are fine
		{"..", true}, // (as in systemd's filename_part_is_valid)
		{"1~rc1", false},
		{"1^post", false},
		{"1/2", false},
		{"1 2", false},
		{"1:2", false},
		{"1\x00", false},
		{"1é", false},
		{"@v", false},
		{strings.Repeat("1", 255), true},
		{strings.Repeat("1", 256), false},
	}
	for _, tt := range tests {
		if got := IsValid(tt.v); got != tt.want {
			t.Errorf("IsValid(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestSort(t *testing.T) {
	got := slices.Clone(documentedOrder)
	slices.Reverse(got)
	Sort(got)
	if !slices.Equal(got, documentedOrder) {
		t.Errorf("Sort = %q,\nwant %q", got, documentedOrder)
	}

	// Stability: equal versions keep their input order.
	got = []string{"2", "1.10", "1.010", "1.1", "1.01", "1.001"}
	Sort(got)
	want := []string{"1.1", "1.01", "1.001", "1.10", "1.010", "2"}
	if !slices.Equal(got, want) {
		t.Errorf("Sort = %q, want %q", got, want)
	}

	Sort(nil) // must not panic
}

func FuzzCompare(f *testing.F) {
	for i, a := range documentedOrder {
		f.Add(a, documentedOrder[(i+1)%len(documentedOrder)], documentedOrder[(i+5)%len(documentedOrder)])
	}
	f.Add("", "", "")
	f.Add("~", "", "-")
	f.Add("1~\xc3", "1~", "1~a")
	f.Add("00123", "123", "0123")
	f.Add("1_2", "1+2", "1,2")
	f.Add("1-.", "1-", "1-^")
	f.Add("a\x00b", "a", "a\x00c")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		ab := Compare(a, b)
		if ab < -1 || ab > 1 {
			t.Fatalf("Compare(%q, %q) = %d, outside -1..1", a, b, ab)
		}
		if ba := Compare(b, a); ba != -ab {
			t.Fatalf("antisymmetry: Compare(%q, %q) = %d but Compare(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if aa := Compare(a, a); aa != 0 {
			t.Fatalf("reflexivity: Compare(%q, %q) = %d", a, a, aa)
		}
		// Transitivity, so that Sort is well defined.
		bc, ac := Compare(b, c), Compare(a, c)
		if ab <= 0 && bc <= 0 && ac > 0 {
			t.Fatalf("transitivity: %q <= %q <= %q but Compare(a, c) = %d", a, b, c, ac)
		}
		if ab == 0 && bc == 0 && ac != 0 {
			t.Fatalf("transitivity of equality: %q == %q == %q but Compare(a, c) = %d", a, b, c, ac)
		}
		if IsValid(a) && (len(a) == 0 || len(a) > maxLen) {
			t.Fatalf("IsValid(%q) accepted bad length", a)
		}
	})
}
