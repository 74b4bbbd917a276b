package osrelease

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  Release
		warns []int // lines of expected warnings
	}{
		{"empty", "", Release{}, nil},
		{"blank lines only", "\n\n  \t\n", Release{}, nil},
		{
			"typical os-release",
			"NAME=\"Fedora Linux\"\nVERSION=\"39 (Container Image)\"\nID=fedora\nVERSION_ID=39\nPRETTY_NAME=\"Fedora Linux 39 (Container Image)\"\nSYSEXT_LEVEL=1.0\n",
			Release{"NAME": "Fedora Linux", "VERSION": "39 (Container Image)", "ID": "fedora", "VERSION_ID": "39", "PRETTY_NAME": "Fedora Linux 39 (Container Image)", "SYSEXT_LEVEL": "1.0"},
			nil,
		},
		{"no final newline", "ID=arch", Release{"ID": "arch"}, nil},
		{"blanks around key and value", "  ID  =  debian  \n", Release{"ID": "debian"}, nil},
		{"tabs", "\tID\t=\tdebian\t\n", Release{"ID": "debian"}, nil},
		{"inner blanks kept", "A=b  c \t\n", Release{"A": "b  c"}, nil},
		{"value with =", "A=b=c\n", Release{"A": "b=c"}, nil},
		{"empty values", "A=\nB=''\nC=\"\"\nD=   \n", Release{"A": "", "B": "", "C": "", "D": ""}, nil},
		{"empty value at EOF", "A=", Release{"A": ""}, nil},

		{"single quotes literal", `A='x "y" \z \'`, Release{"A": `x "y" \z \`}, nil},
		{"double quote escapes", `A="q\" b\\ t\` + "`" + ` d\$ n\n a\a"`, Release{"A": `q" b\ t` + "`" + ` d$ n\n a\a`}, nil},
		{"quoted blanks kept", "A=\"  x  \"  \n", Release{"A": "  x  "}, nil},
		{"quote concatenation", `A="x"'y'z`, Release{"A": "xyz"}, nil},
		{"blank between quotes dropped", `A="x" 'y'`, Release{"A": "xy"}, nil},
		{"quotes after text are literal", `A=x"y" 'z'`, Release{"A": `x"y" 'z'`}, nil},
		{"text after quote trimmed", "A=\"x\"y z  \n", Release{"A": "xy z"}, nil},

		{"unquoted escapes", `A=a\ b\\c\"d\'e`, Release{"A": `a b\c"d'e`}, nil},
		{"escaped trailing blank kept", "A=x\\ \n", Release{"A": "x "}, nil},
		{"escaped blank then blank", "A=x\\  \n", Release{"A": "x "}, nil},
		{"leading escape", "A=\\ x\n", Release{"A": " x"}, nil},
		{"unquoted continuation", "A=a\\\nb\nC=d\n", Release{"A": "ab", "C": "d"}, nil},
		{"continuation keeps next line blanks", "A=a\\\n  b\n", Release{"A": "a  b"}, nil},
		{"double quote continuation", "A=\"a\\\nb\"\n", Release{"A": "ab"}, nil},
		{"double quote raw newline", "A=\"a\nb\"\n", Release{"A": "a\nb"}, nil},
		{"single quote raw newline", "A='a\nb'\n", Release{"A": "a\nb"}, nil},
		{"backslash CR in double quotes kept", "A=\"a\\\rb\"", Release{"A": "a\\\rb"}, nil},
		{"trailing backslash at EOF", "A=abc\\", Release{"A": "abc"}, nil},
		{"trailing backslash in quotes at EOF", "A=\"abc\\", Release{"A": "abc"}, []int{1}},

		{"comments", "# c\n; c\n   # c\nA=b # not a comment\n", Release{"A": "b # not a comment"}, nil},
		{"comment does not continue", "# c \\\nA=b\n", Release{"A": "b"}, nil},
		{"hash inside key", "A#=b\n", Release{}, []int{1}},

		{"line without =", "FOO\nA=b\n", Release{"A": "b"}, []int{1}},
		{"line without = at EOF", "A=b\nFOO", Release{"A": "b"}, []int{2}},
		{
			"invalid keys",
			"1A=b\nA-B=c\nA B=d\nexport X=1\n=x\n==y\nÄ=1\n",
			Release{},
			[]int{1, 2, 3, 4, 5, 6, 7},
		},
		{"key trailing blanks trimmed", "A \t=b\n", Release{"A": "b"}, nil},
		{"duplicate key, later wins", "A=1\nB=x\nA=2\n", Release{"A": "2", "B": "x"}, []int{3}},

		{"CRLF", "A=b\r\nC=\"d\"\r\n", Release{"A": "b", "C": "d"}, nil},
		{"CRLF line numbers", "A=b\r\n\r\nBAD\r\n", Release{"A": "b"}, []int{3}},
		{"lone CR ends line", "A=b\rC=d", Release{"A": "b", "C": "d"}, nil},
		{"NUL ends input", "A=b\nC=d\x00E=f\n", Release{"A": "b", "C": "d"}, []int{2}},
		{"unterminated double quote", "A=\"abc", Release{"A": "abc"}, []int{1}},
		{"unterminated single quote swallows rest", "A='abc\nB=c\n", Release{"A": "abc\nB=c\n"}, []int{1}},
		{"warning line after multi-line value", "A=\"x\ny\"\nBAD\n", Release{"A": "x\ny"}, []int{3}},
		{"warning line of continued key", "A=1\\\n2\nB\n", Release{"A": "12"}, []int{3}},
		{"invalid UTF-8 outside assignments is fine", "# \xff\n\xff\nA=b\n", Release{"A": "b"}, []int{2}},
		{"UTF-8 value", "NAME=\"Fedora – Linux ✓\"\n", Release{"NAME": "Fedora – Linux ✓"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns, err := Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
			}
			var lines []int
			for _, w := range warns {
				lines = append(lines, w.Line)
				if w.Msg == "" || strings.ContainsAny(w.Msg, "\n\r") {
					t.Errorf("bad warning message %q", w.Msg)
				}
			}
			if !equalInts(lines, tt.warns) {
				t.Errorf("Parse(%q) warnings %v, want on lines %v", tt.in, warns, tt.warns)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"invalid UTF-8 value", "A=b\nB=\xff\n", ErrInvalidUTF8},
		{"invalid UTF-8 quoted value", "A=\"\xc3\"", ErrInvalidUTF8},
		{"invalid UTF-8 key", "\xffA=b\n", ErrInvalidUTF8},
		{"invalid UTF-8 in otherwise invalid key", "A\xff B=b\n", ErrInvalidUTF8},
		{"overlong encoding", "A=\xc0\xaf\n", ErrInvalidUTF8},
		{"surrogate", "A=\xed\xa0\x80\n", ErrInvalidUTF8},
		{"too large", strings.Repeat("#", MaxSize+1), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse(strings.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
		})
	}

	if _, _, err := Parse(strings.NewReader(strings.Repeat("#", MaxSize))); err != nil {
		t.Errorf("Parse of exactly MaxSize bytes: %v", err)
	}

	boom := errors.New("boom")
	if _, _, err := Parse(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("Parse of failing reader = %v, want %v", err, boom)
	}

	_, _, err := Parse(strings.NewReader("A=1\nB=2\nC=\"x\xffy\"\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "C") {
		t.Errorf("UTF-8 error %v should name line 3 and key C", err)
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "extension-release.foo")
	if err := os.WriteFile(good, []byte("ID=_any\nBAD\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, warns, err := ParseFile(good)
	if err != nil || rel["ID"] != "_any" || len(warns) != 1 {
		t.Errorf("ParseFile = %v, %v, %v", rel, warns, err)
	}

	bad := filepath.Join(dir, "os-release")
	if err := os.WriteFile(bad, []byte("ID=\xff\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = ParseFile(bad)
	if !errors.Is(err, ErrInvalidUTF8) || !strings.Contains(err.Error(), bad) {
		t.Errorf("ParseFile(bad) error %v should wrap ErrInvalidUTF8 and name %s", err, bad)
	}

	missing := filepath.Join(dir, "nope")
	_, _, err = ParseFile(missing)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("ParseFile(missing) error %v should wrap ErrNotExist and name the file", err)
	}

	_, _, err = ParseFile(dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("ParseFile(dir) error %v should name the path", err)
	}
}

func TestWarningString(t *testing.T) {
	if got := (Warning{Line: 7, Msg: "oops"}).String(); got != "line 7: oops" {
		t.Errorf("String() = %q", got)
	}
}

func TestFormat(t *testing.T) {
	rel := Release{
		"ID":         "fedora",
		"VERSION_ID": "39",
		"NAME":       "Fedora Linux",
		"EMPTY":      "",
		"TRICKY":     "a\"b\\c`d$e'f\ng\rh #i ;j \\\n",
		"URL":        "https://example.org/a_b?c=d",
		"BLANKS":     "  x  ",
	}
	out, err := Format(rel)
	if err != nil {
		t.Fatal(err)
	}
	want := "BLANKS=\"  x  \"\nEMPTY=\"\"\nID=fedora\nNAME=\"Fedora Linux\"\n" +
		"TRICKY=\"a\\\"b\\\\c\\`d\\$e'f\ng\rh #i ;j \\\\\n\"\n" +
		"URL=\"https://example.org/a_b?c=d\"\nVERSION_ID=39\n"
	if string(out) != want {
		t.Errorf("Format =\n%q\nwant\n%q", out, want)
	}
	back, warns, err := Parse(bytes.NewReader(out))
	if err != nil || len(warns) != 0 || !maps.Equal(back, rel) {
		t.Errorf("round trip = %q, %v, %v; want %q", back, warns, err, rel)
	}

	for _, bad := range []Release{
		{"A B": "x"},
		{"": "x"},
		{"A": "x\x00y"},
		{"A": "\xff"},
	} {
		if _, err := Format(bad); err == nil {
			t.Errorf("Format(%q) succeeded, want error", bad)
		}
	}
}

func TestValidKey(t *testing.T) {
	for k, want := range map[string]bool{
		"ID": true, "_": true, "a1": true, "SYSEXT_LEVEL": true,
		"": false, "1A": false, "A-B": false, "A B": false, "A.B": false, "Ä": false,
	} {
		if got := ValidKey(k); got != want {
			t.Errorf("ValidKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"ID=fedora\nVERSION_ID=39\n",
		"NAME=\"Fedora Linux\"\nID_LIKE='rhel centos'\n",
		`A="q\" b\\ t\` + "`" + ` d\$ n\n"`,
		"A=a\\\nb\n# c \\\n; d\nB='x\ny'\n",
		"A=\"x\"'y'z \\  \n",
		"A=b\r\nC=d\rE=f\x00G=h",
		"A='unterminated\n",
		"A=\"unterminated\\",
		"1A=b\nA B=c\n==d\nFOO\n",
		"A=\xff\n",
		"A=1\nA=2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rel, warns, err := Parse(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalidUTF8) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		for k, v := range rel {
			if !ValidKey(k) {
				t.Fatalf("invalid key %q returned", k)
			}
			if strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("value of %s contains NUL", k)
			}
			if len(v) > len(data) {
				t.Fatalf("value of %s longer than the input", k)
			}
		}
		for _, w := range warns {
			if w.Line < 1 || w.Line > len(data)+1 || strings.ContainsAny(w.Msg, "\n\r") {
				t.Fatalf("bad warning %+v", w)
			}
		}

		// Round trip: what Format writes, Parse reads back unchanged.
		out, err := Format(rel)
		if err != nil {
			t.Fatalf("Format(%q): %v", rel, err)
		}
		back, warns, err := Parse(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("re-Parse of %q: %v", out, err)
		}
		if len(warns) != 0 {
			t.Fatalf("re-Parse of %q warned: %v", out, warns)
		}
		if !maps.Equal(back, rel) {
			t.Fatalf("round trip changed data:\n got %q\nwant %q\nvia %q", back, rel, out)
		}
	})
}
