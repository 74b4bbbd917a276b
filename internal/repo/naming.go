package repo

import (
	"fmt"
	"slices"
	"strings"

	"github.com/stratalinux/strata/internal/release"
	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/version"
)

// ImageName is the parsed name of a published image:
// NAME-VERSION-ARCH.raw, the sysext-bakery's naming contract.
type ImageName struct {
	Name, Version, Arch string
}

// File returns the image's file name.
func (n ImageName) File() string { return n.Name + "-" + n.Version + "-" + n.Arch + ".raw" }

// archNames are systemd's architecture names, longest first so that
// "x86-64" wins over "x86" and "arm64-be" over a shorter match.
var archNames = func() []string {
	a := sdparse.Architectures()
	slices.SortStableFunc(a, func(x, y string) int { return len(y) - len(x) })
	return a
}()

// ParseImageName splits NAME-VERSION-ARCH.raw. The version starts at the
// first "-" followed by a digit (or "v" and a digit), so names may contain
// dashes ("docker-compose-2.24.5-x86-64.raw").
func ParseImageName(file string) (ImageName, error) {
	base, ok := strings.CutSuffix(file, ".raw")
	if !ok {
		return ImageName{}, fmt.Errorf("%s: image names must end in .raw (NAME-VERSION-ARCH.raw)", file)
	}
	var n ImageName
	for _, a := range archNames {
		if rest, ok := strings.CutSuffix(base, "-"+a); ok {
			n.Arch, base = a, rest
			break
		}
	}
	if n.Arch == "" {
		return ImageName{}, fmt.Errorf("%s: no architecture suffix (NAME-VERSION-ARCH.raw with ARCH like x86-64 or arm64)", file)
	}
	cut := -1
	for i := 0; i+1 < len(base); i++ {
		if base[i] != '-' {
			continue
		}
		c := base[i+1]
		if isDigit(c) || (c == 'v' && i+2 < len(base) && isDigit(base[i+2])) {
			cut = i
			break
		}
	}
	if cut < 0 {
		cut = strings.LastIndexByte(base, '-')
	}
	if cut <= 0 {
		return ImageName{}, fmt.Errorf("%s: cannot tell name from version (NAME-VERSION-ARCH.raw)", file)
	}
	n.Name, n.Version = base[:cut], base[cut+1:]
	if err := release.ValidName(n.Name); err != nil {
		return ImageName{}, fmt.Errorf("%s: %w", file, err)
	}
	if !version.IsValid(n.Version) {
		return ImageName{}, fmt.Errorf("%s: %q is not a valid version ([A-Za-z0-9.,_+-])", file, n.Version)
	}
	return n, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// MinorLine returns the "major.minor" stream prefix of a version such as
// v1.30.2 ("v1.30"), or false when the version has fewer than three
// numeric components.
func MinorLine(v string) (string, bool) {
	s := strings.TrimPrefix(v, "v")
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", false
	}
	for _, p := range parts[:2] {
		for i := 0; i < len(p); i++ {
			if !isDigit(p[i]) {
				return "", false
			}
		}
	}
	if !isDigit(parts[2][0]) {
		return "", false
	}
	return v[:len(v)-len(parts[2])-1], true
}
