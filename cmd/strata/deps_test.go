package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoHeavyDependencies keeps packages whose initialisation costs
// milliseconds out of the node binary: every `strata sysext merge` pays
// for every linked package's init. etcd is reached through its JSON
// gateway (coord/etcdlock), not its gRPC client.
func TestNoHeavyDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{"google.golang.org/grpc", "google.golang.org/protobuf", "go.etcd.io/etcd/client"} {
			if pkg == heavy || strings.HasPrefix(pkg, heavy+"/") {
				t.Errorf("the strata binary links %s", pkg)
			}
		}
	}
}
