// Package merge activates extension images the way systemd-sysext and
// systemd-confext do: it decides which discovered images apply to this
// host (Evaluate), plans the overlay of every hierarchy (MakePlan, pure),
// and carries the plan out with mount syscalls, replacing a previous merge
// in one step so that /usr never disappears during a refresh.
package merge

import (
	"fmt"
	"strings"

	"github.com/stratalinux/strata/internal/sdparse"
)

// Mode is the mutability of merged hierarchies (systemd's --mutable=).
type Mode string

const (
	MutableNo              Mode = "no"
	MutableYes             Mode = "yes"
	MutableAuto            Mode = "auto"
	MutableImport          Mode = "import"
	MutableEphemeral       Mode = "ephemeral"
	MutableEphemeralImport Mode = "ephemeral-import"
)

// Modes lists the known modes in systemd's order.
var Modes = []Mode{MutableNo, MutableYes, MutableAuto, MutableImport, MutableEphemeral, MutableEphemeralImport}

// ParseMode accepts a mode name or a boolean (true → yes, false → no).
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if s == string(m) {
			return m, nil
		}
	}
	if b, err := sdparse.Boolean(s); err == nil {
		if b {
			return MutableYes, nil
		}
		return MutableNo, nil
	}
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("unknown mutable mode %q (known: %s)", s, strings.Join(names, ", "))
}

func (m Mode) ephemeral() bool { return m == MutableEphemeral || m == MutableEphemeralImport }
