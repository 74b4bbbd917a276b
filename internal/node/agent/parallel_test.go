package agent

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestAgentParallelOnlyForPayloads: Run tells its Parallel hook "on" before the download, verify and
// install of an update and "off" when it goes back to sleep; an idle round never turns it on.
func TestAgentParallelOnlyForPayloads(t *testing.T) {
	e := newFleetEnv(t)
	sum := sha256.Sum256(e.payload)
	f := newFakeOmaha(t, map[string][]byte{"usr-2.0.0.raw": e.payload})
	for _, c := range []struct {
		name   string
		answer func(string) []byte
		want   string
	}{
		{"noupdate", func(string) []byte {
			return []byte(`<response protocol="3.0"><app appid="` + osApp + `" status="ok"><updatecheck status="noupdate"></updatecheck></app></response>`)
		}, "off"},
		{"update", func(b string) []byte {
			return offerXML(b, "2.0.0", "usr-2.0.0.raw", int64(len(e.payload)), base64.StdEncoding.EncodeToString(sum[:]), "")
		}, "on on on off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.mu.Lock()
			f.answer = c.answer
			f.mu.Unlock()
			n := e.node(t)
			a := n.agent(t, "A", nil)
			a.Config.Server = f.url + "/v1/update/"
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls []string
			a.Parallel = func(on bool) {
				if on {
					calls = append(calls, "on")
					return
				}
				calls = append(calls, "off")
				cancel() // one round of Run is enough
			}
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			if got := strings.Join(calls, " "); got != c.want {
				t.Fatalf("Parallel calls %q, want %q (journal %+v)", got, c.want, a.Journal())
			}
		})
	}
}
