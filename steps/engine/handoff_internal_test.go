package engine

import (
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

func TestParseListen(t *testing.T) {
	for _, tc := range []struct {
		in, addr string
		port     int
	}{
		{"0100007F:1F90", "127.0.0.1", 8080},
		{"00000000:0016", "0.0.0.0", 22},
		{"00000000000000000000000001000000:2328", "::1", 9000},
		{"00000000000000000000000000000000:0050", "::", 80},
		{"0000000000000000FFFF00000100007F:0050", "127.0.0.1", 80},
	} {
		l, ok := parseListen(tc.in)
		if !ok || l.addr.String() != tc.addr || l.port != tc.port {
			t.Errorf("%s: %v %v, want %s:%d", tc.in, l, ok, tc.addr, tc.port)
		}
	}
	for _, bad := range []string{"", "0100007F", "zz:0016", "0100007F:GG", "01:0016"} {
		if _, ok := parseListen(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A port bound to the loopback alone is reachable only on the machine: a
// failure when the machine is reached over the network, fine when it is
// the loopback itself (the test host).
func TestPortItemsLoopbackOnly(t *testing.T) {
	yes, no := true, false
	ps := []PortStatus{{Port: 9000, Listening: &yes, Addresses: []string{"127.0.0.1", "::1"}, Reachable: &no, Error: "connection refused"}}
	items := portItems(ps, "203.0.113.7")
	if items[0].Status != steps.StatusFail || !strings.Contains(items[0].Summary, "loopback only") || !strings.Contains(items[0].Fix, "0.0.0.0") {
		t.Errorf("listen: %+v", items[0])
	}
	if items[1].Status != steps.StatusWarn || strings.Contains(items[1].Summary, "listens on the machine") {
		t.Errorf("a loopback-only port that does not answer is not the provider's firewall: %+v", items[1])
	}
	items = portItems(ps, "127.0.0.1")
	if items[0].Status != steps.StatusOK || items[1].Status != steps.StatusFail || !strings.Contains(items[1].Summary, "provider's firewall") {
		t.Errorf("on the loopback: %+v", items)
	}
}
