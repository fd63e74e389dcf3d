package sshexec

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
)

// naiveFacts is what a script that runs one ssh per fact would ask.
var naiveFacts = []string{
	"uname -m", "cat /etc/os-release", "id -u", "sudo -n true", "command -v tar", "command -v cpio",
	"setsid --wait true", "cat /proc/meminfo", "lsblk -J -b", "test -d /sys/firmware/efi",
	"cat /proc/sys/kernel/kexec_load_disabled", "df -Pk $HOME", "hostname", "cat /etc/ssh/ssh_host_ed25519_key.pub",
}

// BenchmarkPreflight compares, through a proxy adding 50 ms each way
// (100 ms round trip), bigbang's whole preflight (dial, auth, all facts)
// with one OpenSSH `ssh host true` and with one ssh per fact.
func BenchmarkPreflight(b *testing.B) {
	h := testhost.Start(b, testhost.Options{})
	p := testhost.NewProxy(b, h.Addr(), 50*time.Millisecond)
	kh := filepath.Join(b.TempDir(), "known_hosts")
	f, _ := os.Create(kh)
	f.WriteString("[127.0.0.1]:" + p.PortString() + " " + h.HostKeyPub() + "\n")
	f.Close()
	sshArgs := []string{"-F", os.DevNull, "-i", h.ClientKey, "-o", "UserKnownHostsFile=" + kh, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-p", p.PortString(), h.User + "@127.0.0.1"}

	b.Run("bigbang-dial-auth-facts", func(b *testing.B) {
		for b.Loop() {
			o := Options{Target: Target{Host: "127.0.0.1", Port: p.Port(), User: h.User, Identity: h.ClientKey, SSHConfig: os.DevNull},
				KnownHosts: kh, AgentSocket: "none"}
			c, err := Dial(context.Background(), o)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Facts(context.Background()); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("openssh-true", func(b *testing.B) {
		for b.Loop() {
			if out, err := exec.Command("ssh", append(sshArgs, "true")...).CombinedOutput(); err != nil {
				b.Fatalf("ssh: %v %s", err, out)
			}
		}
	})
	b.Run("naive-ssh-per-fact", func(b *testing.B) {
		for b.Loop() {
			for _, cmd := range naiveFacts {
				_ = exec.Command("ssh", append(sshArgs, cmd)...).Run()
			}
		}
	})
}

// BenchmarkRebootNotice measures how long after the test host's sshd
// listens again WaitForHost has logged in with the expected key. It
// reports the median over the iterations.
func BenchmarkRebootNotice(b *testing.B) {
	h := testhost.Start(b, testhost.Options{})
	var notice []time.Duration
	for i := 0; b.Loop(); i++ {
		key, pub, err := testhost.GenerateKey(b.TempDir(), "hk"+strconv.Itoa(i), "")
		if err != nil {
			b.Fatal(err)
		}
		h.Reboot(1500*time.Millisecond, key)
		c, _, err := WaitForHost(context.Background(), RebootOptions{
			Target:          Target{Host: h.IP, Port: h.Port, User: h.User, Identity: h.ClientKey, SSHConfig: os.DevNull},
			ExpectedHostKey: []byte(pub), AgentSocket: "none", Timeout: time.Minute,
		})
		if err != nil {
			b.Fatal(err)
		}
		got := time.Now()
		c.Close()
		up, err := h.WaitUp(10 * time.Second)
		if err != nil {
			b.Fatal(err)
		}
		notice = append(notice, got.Sub(up))
	}
	sort.Slice(notice, func(i, j int) bool { return notice[i] < notice[j] })
	b.ReportMetric(float64(notice[len(notice)/2].Milliseconds()), "median-notice-ms")
	b.ReportMetric(float64(notice[len(notice)-1].Milliseconds()), "max-notice-ms")
}
