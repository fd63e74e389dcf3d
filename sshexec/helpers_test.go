package sshexec

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
)

// opts returns dial options for the test host that read no ssh
// configuration of this machine (-F /dev/null) and use no agent.
func opts(h *testhost.Host, knownHosts string) Options {
	return Options{
		Target:      Target{Host: h.IP, Port: h.Port, User: h.User, Identity: h.ClientKey, SSHConfig: os.DevNull},
		KnownHosts:  knownHosts,
		AgentSocket: "none",
		Timeout:     10 * time.Second,
	}
}

func knownHostsFile(t *testing.T, h *testhost.Host, extra ...string) string {
	t.Helper()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	h.WriteKnownHosts(kh, extra...)
	return kh
}

func dial(t *testing.T, o Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
