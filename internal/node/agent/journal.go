package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stratalinux/strata/internal/limitread"
	"github.com/stratalinux/strata/internal/repo"
)

// StateDir is where the agent keeps its journal and downloads.
const StateDir = "/var/lib/strata/agent"

// maxJournalBytes bounds the journal read back at start.
const maxJournalBytes = 1 << 20

// JournalPath is the journal file in dir.
func JournalPath(dir string) string { return filepath.Join(dir, "state.json") }

// LoadJournal reads the journal in dir; none yet is an idle journal.
func LoadJournal(dir string) (Journal, error) {
	f, err := os.Open(JournalPath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return Journal{Phase: Idle}, nil
	}
	if err != nil {
		return Journal{}, fmt.Errorf("read agent journal: %w", err)
	}
	defer f.Close()
	b, err := limitread.ReadAll(f, maxJournalBytes)
	if err != nil {
		return Journal{}, fmt.Errorf("read agent journal %s: %w", f.Name(), err)
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return Journal{}, fmt.Errorf("agent journal %s is damaged (%v); move it away to start over", f.Name(), err)
	}
	if j.Phase == "" {
		j.Phase = Idle
	}
	return j, nil
}

// SaveJournal writes the journal atomically: temp file in dir, fsync,
// rename, fsync of dir.
func SaveJournal(dir string, j Journal) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent state directory: %w", err)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return repo.WriteAtomic(JournalPath(dir), append(b, '\n'), 0o600)
}
