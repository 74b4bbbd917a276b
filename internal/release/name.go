package release

import "fmt"

// ValidName checks an image name: it becomes a file name
// (NAME-VERSION-ARCH.raw), the suffix of extension-release.NAME, a
// sysupdate pattern and a directory name, so it is held to the characters
// all of those take.
func ValidName(s string) error {
	ok := s != "" && len(s) <= 128 && s[0] != '.' && s[0] != '-'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '+'
	}
	if !ok {
		return fmt.Errorf("image name %q: use 1 to 128 letters, digits, '-', '_', '.' or '+', not starting with '.' or '-'", s)
	}
	return nil
}
