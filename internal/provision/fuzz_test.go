package provision

import (
	"encoding/json"
	"testing"
)

// FuzzIgnition feeds arbitrary Butane to the translation: it must return
// an error or valid JSON, never panic.
func FuzzIgnition(f *testing.F) {
	for _, s := range []string{
		"variant: flatcar\nversion: 1.0.0\n",
		"variant: fcos\nversion: 1.6.0\nstorage:\n  files:\n    - path: /etc/x\n      contents:\n        inline: x\n",
		"variant: flatcar\nversion: 1.1.0\nsystemd:\n  units:\n    - name: a.service\n      dropins:\n        - name: b.conf\n          contents: \"[Service]\\n\"\n",
		"variant: openshift\nversion: 4.16.0\n",
		"variant: fcos\nversion: 1.5.0\nstorage:\n  links:\n    - path: /etc/extensions/a.raw\n      target: /opt/a.raw\n",
		"",
		"{",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, pretty bool) {
		if len(in) > 64<<10 {
			return
		}
		out, err := Ignition(in, pretty)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON for %q:\n%s", in, out)
		}
	})
}
