package reinstall

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps"
)

// TestBenchBackup compares a backup through bigbang (over a real sshd on
// loopback, with the SHA-256 and the read-back verification) with plain
// `ssh host tar c … > file` using the same tar and zstd, for trees of a few
// sizes (best of two runs each), and samples the Go heap during each
// backup. It only runs when
// BIGBANG_BENCH is set (scripts/bench-backup.sh sets it): timing goals are
// reported, not asserted.
func TestBenchBackup(t *testing.T) {
	if os.Getenv("BIGBANG_BENCH") == "" {
		t.Skip("benchmark: run scripts/bench-backup.sh")
	}
	sizes := []int64{256 << 20, 1 << 30}
	if s := os.Getenv("BIGBANG_BENCH_SIZES_MIB"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatalf("BIGBANG_BENCH_SIZES_MIB: %v", err)
			}
			sizes = append(sizes, n<<20)
		}
	}
	h := testhost.Start(t, testhost.Options{})
	c := dialTestHost(t, h, h.IP, h.Port)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	h.WriteKnownHosts(kh)

	fmt.Printf("%-10s %-26s %10s %10s %12s %14s\n", "tree", "method", "seconds", "MiB/s", "vs ssh+tar", "peak Go heap")
	for _, size := range sizes {
		src := filepath.Join(t.TempDir(), "persistent")
		fillTree(t, src, size)
		ri := parseProbeLocal(t, src)
		comp := "zstd"
		flags, _ := tarFlags(ri)

		// Each side runs twice, alternating, and keeps its best time: the
		// machine's other work and the page cache's writeback would
		// otherwise favour whichever ran first.
		var plain, ours time.Duration
		var peak uint64
		var a Archive
		for round := 0; round < 2; round++ {
			d := runPlain(t, h, kh, BackupCommand(src, comp, flags))
			if plain == 0 || d < plain {
				plain = d
			}
			dir := t.TempDir()
			stop := sampleHeap()
			start := time.Now()
			var err error
			a, err = Backup(context.Background(), c, BackupOptions{Plaintext: true, Host: "bench", Source: src, Dir: dir}, nil)
			d = time.Since(start)
			if p := stop(); p > peak {
				peak = p
			}
			if err != nil {
				t.Fatal(err)
			}
			if ours == 0 || d < ours {
				ours = d
			}
			os.RemoveAll(dir)
		}
		mib := float64(a.Manifest.Bytes) / (1 << 20)
		label := steps.FormatBytes(size)
		fmt.Printf("%-10s %-26s %10.2f %10.1f %12s %14s\n", label, "ssh host tar c > file", plain.Seconds(), mib/plain.Seconds(), "100%", "-")
		fmt.Printf("%-10s %-26s %10.2f %10.1f %11.0f%% %14s\n", label, "bigbang Backup (sshexec)", ours.Seconds(), mib/ours.Seconds(), 100*plain.Seconds()/ours.Seconds(), steps.FormatBytes(int64(peak)))
		os.RemoveAll(src)
	}
}

// runPlain times `ssh host <cmd> > file` with OpenSSH's client.
func runPlain(t *testing.T, h *testhost.Host, kh, cmd string) time.Duration {
	t.Helper()
	out := filepath.Join(t.TempDir(), "plain.tar.zst")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(out)
	defer f.Close()
	ssh := exec.Command("ssh", "-F", os.DevNull, "-i", h.ClientKey, "-p", h.PortString(), "-o", "UserKnownHostsFile="+kh,
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", h.User+"@"+h.IP, cmd)
	var errb strings.Builder
	ssh.Stdout, ssh.Stderr = f, &errb
	start := time.Now()
	if err := ssh.Run(); err != nil {
		t.Fatalf("ssh tar: %v %s", err, errb.String())
	}
	return time.Since(start)
}

func parseProbeLocal(t *testing.T, dir string) remoteInfo {
	out, err := exec.Command("sh", "-c", probeScript(dir)).Output()
	if err != nil {
		t.Fatal(err)
	}
	return parseProbe(out)
}

// fillTree writes size bytes in 16 MiB files, half random (incompressible)
// and half text-like, as a machine's state mixes databases and logs.
func fillTree(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const chunk = 16 << 20
	rng := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, chunk)
	for i := int64(0); i*chunk < size; i++ {
		if i%2 == 0 {
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
		} else {
			for j := range buf {
				buf[j] = "log line: service started ok\n"[j%29]
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%04d", i)), buf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// sampleHeap samples the Go heap in use every 20 ms until the returned
// function is called, which returns the peak.
func sampleHeap() func() uint64 {
	runtime.GC()
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak {
				peak = m.HeapInuse
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}
