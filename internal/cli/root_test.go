package cli

import (
	"io"
	"strings"
	"testing"
)

// The names in subcommands pick the one command to build; they must be
// the commands' own names, or a command would become unreachable.
func TestSubcommandNames(t *testing.T) {
	env := &Env{Stdin: nil, Stdout: io.Discard, Stderr: io.Discard, Log: newLogger(io.Discard)}
	for _, sc := range subcommands {
		if got := sc.new(env).Name(); got != sc.name {
			t.Errorf("subcommands entry %q builds command %q", sc.name, got)
		}
		root := newRootCommand(env, []string{"--x", sc.name, "a"})
		if n := len(root.Commands()); n != 1 || root.Commands()[0].Name() != sc.name {
			t.Errorf("strata %s built %d commands", sc.name, n)
		}
	}
	if got, want := len(newRootCommand(env, []string{"help"}).Commands()), len(subcommands); got < want {
		t.Errorf("strata help built %d of %d commands", got, want)
	}
}

// systemd's tools print "systemd NNN (…)" for --version; scripts gate
// features on NNN.
func TestMultiCallVersion(t *testing.T) {
	for _, name := range []string{"systemd-sysext", "systemd-confext", "systemd-sysupdate"} {
		var out strings.Builder
		if code := Main([]string{"/usr/bin/" + name, "--version"}, strings.NewReader(""), &out, io.Discard); code != 0 {
			t.Fatalf("%s --version: exit %d", name, code)
		}
		if want := "systemd " + CompatSystemd + " (strata "; !strings.HasPrefix(out.String(), want) {
			t.Fatalf("%s --version: %q, want prefix %q", name, out.String(), want)
		}
	}
}
