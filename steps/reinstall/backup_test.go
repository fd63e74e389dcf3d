package reinstall

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

func TestCommands(t *testing.T) {
	m := Manifest{Compression: "zstd", TarOptions: []string{"sparse", "xattrs", "acls"}}
	tests := []struct {
		name, got, want string
	}{
		{"backup zstd", BackupCommand("/persistent", "zstd", []string{"--numeric-owner", "--sparse", "--xattrs", "--xattrs-include=*", "--acls"}),
			"LC_ALL=C tar --create --file=- --directory=/persistent --numeric-owner --sparse --xattrs '--xattrs-include=*' --acls '--use-compress-program=zstd -T0 -3 -q' ."},
		{"backup odd dir gzip", BackupCommand("/srv/my state'", "gzip", []string{"--numeric-owner"}),
			`LC_ALL=C tar --create --file=- '--directory=/srv/my state'\''' --numeric-owner '--use-compress-program=gzip -1' .`},
		{"restore", RestoreCommand("/persistent", m),
			"mkdir -p -- /persistent || { s=$?; echo 'bigbang-step: mkdir -p /persistent'\" exited with status $s\" >&2; exit $s; }\n" +
				"cd -- /persistent || { s=$?; echo 'bigbang-step: cd /persistent'\" exited with status $s\" >&2; exit $s; }\n" +
				"LC_ALL=C tar --extract --file=- --numeric-owner --same-owner --same-permissions --xattrs '--xattrs-include=*' --acls --use-compress-program=zstd || { s=$?; echo 'bigbang-step: tar --extract into /persistent'\" exited with status $s\" >&2; exit $s; }"},
		{"compare", CompareCommand("/persistent", Manifest{Compression: "none"}),
			"cd -- /persistent || { s=$?; echo 'bigbang-step: cd /persistent'\" exited with status $s\" >&2; exit $s; }\n" +
				"LC_ALL=C tar --compare --file=- --numeric-owner || { s=$?; echo 'bigbang-step: tar --compare with /persistent'\" exited with status $s\" >&2; exit $s; }"},
		{"sudo", wrap("cd -- /persistent && du -sb .", true), "sudo -n sh -c 'cd -- /persistent && du -sb .'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", tt.got, tt.want)
			}
		})
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	testutil.Need(t, "tar")
	testutil.Need(t, "zstd")
	base := t.TempDir()
	src, dst, dir := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "backups")
	makeTree(t, src)
	want, wantLines := treeHash(t, src)

	r := &localRemote{}
	var calls atomic.Int32
	var last Progress
	a, err := Backup(context.Background(), r, BackupOptions{Plaintext: true, Host: "vps", HostKeyFingerprint: "SHA256:abc", Source: src, Dir: dir},
		func(p Progress) { calls.Add(1); last = p })
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() == 0 || last.Bytes != a.Manifest.Bytes || last.Total == 0 {
		t.Fatalf("progress: %d calls, last %+v", calls.Load(), last)
	}
	fi, err := os.Stat(a.Path)
	if err != nil || fi.Mode().Perm() != 0o600 || !strings.HasSuffix(a.Path, ".tar.zst") {
		t.Fatalf("archive %s: %v %v", a.Path, fi.Mode(), err)
	}
	if fi, err := os.Stat(a.ManifestPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest %s: %v", a.ManifestPath, err)
	}
	// Plaintext, as asked: said so in the manifest, no age header.
	if a.Manifest.Encryption != EncryptionNone || a.Manifest.Encrypted() || len(a.Manifest.Recipients) != 0 || strings.HasPrefix(readAll(t, a.Path), AgeMagic) {
		t.Fatalf("a plaintext backup: manifest %+v", a.Manifest)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*"+IncompleteSuffix)); len(matches) != 0 {
		t.Fatalf("left incomplete files: %v", matches)
	}
	if a.Manifest.Entries != int64(len(wantLines)) {
		t.Fatalf("manifest entries %d, tree has %d", a.Manifest.Entries, len(wantLines))
	}
	reopened, err := OpenArchive(a.Path)
	if err != nil || reopened.Manifest.SHA256 != a.Manifest.SHA256 {
		t.Fatalf("OpenArchive: %+v %v", reopened, err)
	}
	if err := VerifyChecksum(reopened); err != nil {
		t.Fatal(err)
	}

	res, err := Restore(context.Background(), r, reopened, RestoreOptions{Host: "vps", HostKeyFingerprint: "SHA256:abc", Target: dst, AnotherTarget: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != a.Manifest.Entries || res.Bytes != a.Manifest.Bytes {
		t.Fatalf("restored %+v, manifest %+v", res, a.Manifest)
	}
	got, gotLines := treeHash(t, dst)
	if got != want {
		t.Fatalf("restored tree differs:\n%s\nwant\n%s", strings.Join(gotLines, "\n"), strings.Join(wantLines, "\n"))
	}
	if n := allocated(t, filepath.Join(dst, "var/lib/sparse.img")); n > 16<<20 {
		t.Fatalf("restored sparse file occupies %d bytes: holes were filled", n)
	}
	if !strings.Contains(strings.Join(gotLines, "\n"), "xattr[user.bigbang=") {
		t.Fatalf("the extended attribute did not come back:\n%s", strings.Join(gotLines, "\n"))
	}
	// The tree hash must notice an owner change, or the comparison above
	// proves nothing.
	if err := os.Lchown(filepath.Join(dst, "home/op/odd owner"), 12345, 1); err != nil {
		t.Fatal(err)
	}
	if again, _ := treeHash(t, dst); again == want {
		t.Fatal("tree hash blind to a changed group")
	}
}

// TestProbeLargeSizes reads the size of a tree over 2 GiB (sparse, so it
// costs no disk): the sums must not wrap at 32 bits.
func TestProbeLargeSizes(t *testing.T) {
	dir := t.TempDir()
	for i, size := range []int64{3 << 30, 5 << 30} {
		f, err := os.Create(filepath.Join(dir, "big"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := os.Link(filepath.Join(dir, "big0"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", probeScript(dir)).Output()
	if err != nil {
		t.Fatal(err)
	}
	ri := parseProbe(out)
	if ri.bytes != 8<<30 || ri.entries != 3 || ri.missing {
		t.Fatalf("probe %+v from\n%s", ri, out)
	}
}

func TestBackupRefusals(t *testing.T) {
	testutil.Need(t, "tar")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		opts   BackupOptions
		want   error
		tarRan bool
	}{
		{
			name: "not enough local space",
			opts: BackupOptions{Plaintext: true, Source: src, StatFS: func(string) (int64, error) { return 1 << 20, nil }},
			want: ErrNoSpace,
		},
		{
			name: "source missing",
			opts: BackupOptions{Plaintext: true, Source: filepath.Join(src, "nope")},
			want: ErrSourceMissing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &localRemote{}
			tt.opts.Host, tt.opts.Dir = "vps", t.TempDir()
			_, err := Backup(context.Background(), r, tt.opts, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, c := range r.commands() {
				if strings.Contains(c, "tar --create") {
					t.Fatalf("streamed although refused: %s", c)
				}
			}
			if entries, _ := os.ReadDir(tt.opts.Dir); len(entries) != 0 {
				t.Fatalf("left files: %v", entries)
			}
		})
	}
}

func TestBackupCutAndInterrupted(t *testing.T) {
	testutil.Need(t, "tar")
	src := t.TempDir()
	// Random content, which does not compress away.
	buf := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "data"), buf, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote func() Remote
		ctx    func(t *testing.T) (context.Context, func(Progress))
		want   error
	}{
		{
			name:   "connection cut",
			remote: func() Remote { return &cutRemote{limit: 1 << 20} },
			ctx:    func(*testing.T) (context.Context, func(Progress)) { return context.Background(), nil },
			want:   errCut,
		},
		{
			name:   "ctrl+c",
			remote: func() Remote { return &localRemote{} },
			ctx: func(t *testing.T) (context.Context, func(Progress)) {
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				// Cancel as soon as the stream has started.
				return ctx, func(Progress) { cancel() }
			},
			want: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, prog := tt.ctx(t)
			// A slow stream (1 MiB/s) so the interrupt lands mid-way.
			r := tt.remote()
			if lr, ok := r.(*localRemote); ok {
				r = &throttled{lr}
			}
			_, err := Backup(ctx, r, BackupOptions{Plaintext: true, Host: "vps", Source: src, Dir: dir, Now: func() time.Time { return time.Unix(0, 0) }}, prog)
			var ie *IncompleteError
			if !errors.As(err, &ie) || !errors.Is(err, ErrIncomplete) || !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want an IncompleteError wrapping %v", err, tt.want)
			}
			if !strings.HasSuffix(ie.Path, IncompleteSuffix) {
				t.Fatalf("partial file %s not named incomplete", ie.Path)
			}
			if _, err := os.Stat(ie.Path); err != nil {
				t.Fatalf("partial file: %v", err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if !strings.HasSuffix(e.Name(), IncompleteSuffix) {
					t.Fatalf("a file not named incomplete: %s", e.Name())
				}
			}
			if _, err := OpenArchive(ie.Path); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("OpenArchive of a partial file: %v", err)
			}
		})
	}
}

// throttled slows a remote's output so that an interrupt lands mid-stream.
type throttled struct{ *localRemote }

type slowWriter struct{ w io.Writer }

func (s slowWriter) Write(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return s.w.Write(p)
}

func (t *throttled) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if strings.Contains(cmd, "tar --create") {
		stdout = slowWriter{stdout}
	}
	return t.localRemote.Run(ctx, cmd, stdin, stdout, stderr)
}

func TestRestoreRefusals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vps-x.tar")
	if err := os.WriteFile(path, []byte("not the archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		m    Manifest
		host string
		fp   string
		want error
	}{
		{"other host", Manifest{Host: "other", SHA256: "x"}, "vps", "", ErrOtherHost},
		{"other host key", Manifest{Host: "vps", HostKeyFingerprint: "SHA256:old"}, "vps", "SHA256:new", ErrOtherHost},
		{"damaged", Manifest{Host: "vps", SHA256: "00"}, "vps", "", ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &localRemote{}
			_, err := Restore(context.Background(), r, Archive{Path: path, Manifest: tt.m}, RestoreOptions{Host: tt.host, HostKeyFingerprint: tt.fp, Target: t.TempDir()}, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if c := r.commands(); len(c) != 0 {
				t.Fatalf("ran commands although refused: %q", c)
			}
		})
	}
}

// TestRestoreServicesAndGzip restores through a target whose PATH has no
// zstd (so the backup falls back to gzip) and a systemctl that logs what
// it was asked: the services stop before the unpack and start after it.
func TestRestoreServicesAndGzip(t *testing.T) {
	testutil.Need(t, "tar")
	bin := t.TempDir()
	for _, tool := range []string{"sh", "tar", "gzip", "du", "cut", "find", "wc", "awk", "mkdir", "cat"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(t.TempDir(), "systemctl.log")
	stub := "#!/bin/sh\necho \"$*\" >> " + log + "\n"
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "db"), []byte("rows"), 0o640); err != nil {
		t.Fatal(err)
	}
	r := &localRemote{path: bin}
	a, err := Backup(context.Background(), r, BackupOptions{Plaintext: true, Host: "vps", Source: src, Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.Compression != "gzip" || !strings.HasSuffix(a.Path, ".tar.gz") {
		t.Fatalf("compression %s, path %s", a.Manifest.Compression, a.Path)
	}
	if _, err := Restore(context.Background(), r, a, RestoreOptions{Host: "vps", Target: dst, AnotherTarget: true, Services: []string{"postgresql.service", "my app.service"}}, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	if string(b) != "stop -- postgresql.service my app.service\nstart -- postgresql.service my app.service\n" {
		t.Fatalf("systemctl calls:\n%s", b)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "db")); string(got) != "rows" {
		t.Fatalf("restored %q", got)
	}
}

// TestBackupLocalDiskFills backs up onto a 2 MiB tmpfs that the free-space
// check was told is large: the write fails mid-stream, and the partial file
// is named as incomplete.
func TestBackupLocalDiskFills(t *testing.T) {
	testutil.NeedRoot(t, "mounting a small tmpfs needs root")
	testutil.Need(t, "tar")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	src := t.TempDir()
	buf := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "data"), buf, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Backup(context.Background(), &localRemote{}, BackupOptions{Plaintext: true, Host: "vps", Source: src, Dir: dir,
		StatFS: func(string) (int64, error) { return 1 << 40, nil }}, nil)
	var ie *IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, ErrNoSpace) || !strings.HasSuffix(ie.Path, IncompleteSuffix) {
		t.Fatalf("err = %v, want an incomplete backup for lack of space", err)
	}
}

// TestRestoreInterrupted stops a restore as soon as it streams: the error
// says the restore is incomplete, and the stopped services come back.
func TestRestoreInterrupted(t *testing.T) {
	testutil.Need(t, "tar")
	src := t.TempDir()
	buf := make([]byte, 4<<20)
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "data"), buf, 0o600); err != nil {
		t.Fatal(err)
	}
	r := &localRemote{}
	a, err := Backup(context.Background(), r, BackupOptions{Plaintext: true, Host: "vps", Source: src, Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	log := filepath.Join(t.TempDir(), "systemctl.log")
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+log+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.path = bin + ":" + os.Getenv("PATH")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow := &throttled{r}
	_, err = Restore(ctx, slowStdin{slow}, a, RestoreOptions{Host: "vps", Target: t.TempDir(), AnotherTarget: true, Services: []string{"app.service"}},
		func(Progress) { cancel() })
	if !errors.Is(err, ErrRestoreIncomplete) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want an incomplete restore", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "stop -- app.service\nstart -- app.service\n" {
		t.Fatalf("systemctl calls:\n%s", b)
	}
}

// slowStdin slows the archive going into a remote command.
type slowStdin struct{ Remote }

type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 32<<10)])
}

func (s slowStdin) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if stdin != nil {
		stdin = slowReader{stdin}
	}
	return s.Remote.Run(ctx, cmd, stdin, stdout, stderr)
}
