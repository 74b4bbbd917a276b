package repo

import (
	"encoding/hex"
	"path/filepath"
	"strings"
)

// LookupSum finds name in an upstream project's checksum listing
// ("HEX  NAME" or "HEX *NAME", paths compared by base name) and returns
// its hash. Upstream listings are not Strata manifests: comments, other
// hash lengths and paths are skipped rather than refused, which is why
// this is not ParseManifest.
func LookupSum(data []byte, name string) (string, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || len(f[0]) != 64 {
			continue
		}
		n := strings.TrimPrefix(f[len(f)-1], "*")
		if n == name || filepath.Base(n) == name {
			if _, err := hex.DecodeString(f[0]); err == nil {
				return strings.ToLower(f[0]), true
			}
		}
	}
	return "", false
}

// FirstHash reads a NAME.sha256 file: its first word is the hex digest.
func FirstHash(data []byte) (string, bool) {
	f := strings.Fields(string(data))
	if len(f) == 0 || len(f[0]) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(f[0]); err != nil {
		return "", false
	}
	return strings.ToLower(f[0]), true
}
