package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/stratalinux/strata/internal/limitread"
	"github.com/stratalinux/strata/internal/repo"
)

// StateDir is where the agent keeps its journal and downloads.
const StateDir = "/var/lib/strata/agent"

// maxJournalBytes bounds the journal read back at start.
const maxJournalBytes = 1 << 20

// JournalPath is the journal file in dir.
func JournalPath(dir string) string { return filepath.Join(dir, "state.json") }

// CheckTimesPath is the file in dir with the last idle check's times,
// newer than the journal's when the check changed nothing else.
func CheckTimesPath(dir string) string { return filepath.Join(dir, "checked.json") }

type checkTimes struct {
	Last time.Time `json:"last_check"`
	Next time.Time `json:"next_check"`
}

// checkTimesSize is the fixed length the check-times record is padded to.
const checkTimesSize = 192

// SaveCheckTimes overwrites the check-times record in place: one write of
// a fixed-size record, no rename, no truncation and no fsync. A rename
// or truncation over an existing file makes ext4 flush it at once
// (auto_da_alloc), which would cost an idle agent a disk write per check;
// a torn record is ignored by LoadJournal.
func SaveCheckTimes(dir string, last, next time.Time) error {
	b, err := json.Marshal(checkTimes{last, next})
	if err != nil {
		return err
	}
	if len(b) >= checkTimesSize {
		return fmt.Errorf("record the check: %d-byte record", len(b))
	}
	b = append(b, bytes.Repeat([]byte(" "), checkTimesSize-1-len(b))...)
	b = append(b, '\n')
	f, err := os.OpenFile(CheckTimesPath(dir), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record the check: %w", err)
	}
	_, err = f.WriteAt(b, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record the check: %w", err)
	}
	return nil
}

// withoutCheckTimes is the journal as saveChecked compares it.
func withoutCheckTimes(j Journal) []byte {
	j.LastCheck, j.NextCheck = time.Time{}, time.Time{}
	b, _ := json.Marshal(j)
	return b
}

// LoadJournal reads the journal in dir, with the newer check times of an
// idle check laid over it; none yet is an idle journal.
func LoadJournal(dir string) (Journal, error) {
	j, err := loadJournal(dir)
	if err != nil {
		return j, err
	}
	// The check-times file is a hint: missing, torn by a power cut or
	// older than the journal, it is ignored.
	if b, err := os.ReadFile(CheckTimesPath(dir)); err == nil && len(b) < 4096 {
		var c checkTimes
		if json.Unmarshal(b, &c) == nil && c.Last.After(j.LastCheck) {
			j.LastCheck, j.NextCheck = c.Last, c.Next
		}
	}
	return j, nil
}

func loadJournal(dir string) (Journal, error) {
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
