package reinstall

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// member is one entry of a crafted archive.
type member struct {
	name, link string
	typ        byte
	body       string
}

func file(name string) member { return member{name: name, typ: tar.TypeReg, body: "x"} }
func dir(name string) member  { return member{name: name, typ: tar.TypeDir} }
func symlink(name, target string) member {
	return member{name: name, typ: tar.TypeSymlink, link: target}
}
func hardlink(name, target string) member { return member{name: name, typ: tar.TypeLink, link: target} }
func craftTar(t *testing.T, ms []member) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Linkname: m.link, Typeflag: m.typ, Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if m.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if m.typ == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if m.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(m.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func compress(t *testing.T, data []byte, comp string) []byte {
	t.Helper()
	var b bytes.Buffer
	switch comp {
	case "zstd":
		w, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	case "gzip":
		w := gzip.NewWriter(&b)
		w.Write(data)
		w.Close()
	default:
		return data
	}
	return b.Bytes()
}

func TestCheckMembers(t *testing.T) {
	tests := []struct {
		name    string
		members []member
		why     string // "" accepted
	}{
		{"a plain tree", []member{dir("./"), dir("./etc"), file("./etc/machine-id"), symlink("./etc/rel", "machine-id"), hardlink("./etc/again", "./etc/machine-id")}, ""},
		{"links out of the tree as leaves (dangling, into the store)", []member{dir("./"), symlink("./dangling", "/nonexistent/target"), symlink("./hm", "/nix/store/abc-home-manager-files/.bashrc"), symlink("./up", "../../etc")}, ""},
		{"dot dot", []member{file("../evil")}, `".." component`},
		{"dot dot inside", []member{file("./a/../../evil")}, `".." component`},
		{"absolute name", []member{file("/etc/cron.d/evil")}, "absolute name"},
		{"written through an absolute symlink", []member{symlink("./etc", "/etc"), file("./etc/passwd")}, `lies under "etc", a symlink to "/etc"`},
		{"written through a relative symlink", []member{dir("./a"), symlink("./a/up", "../../.."), dir("./a/up/root"), file("./a/up/root/.ssh/authorized_keys")}, `lies under "a/up"`},
		{"a symlink replaced by a directory, then written through", []member{symlink("./x", "/etc"), dir("./x"), file("./x/shadow")}, `lies under "x"`},
		{"hard link with dot dot", []member{hardlink("./shadow", "../../etc/shadow")}, "hard link to a file outside"},
		{"hard link absolute", []member{hardlink("./shadow", "/etc/shadow")}, "hard link to a file outside"},
		{"hard link through a symlink", []member{symlink("./etc", "/etc"), hardlink("./shadow", "etc/shadow")}, "hard link through \"etc\""},
		{"hard link to a symlink", []member{symlink("./l", "/etc/shadow"), hardlink("./h", "./l")}, "hard link through \"l\""},
	}
	for _, comp := range []string{"zstd", "gzip", "none"} {
		for _, tt := range tests {
			t.Run(comp+"/"+tt.name, func(t *testing.T) {
				data := compress(t, craftTar(t, tt.members), comp)
				err := CheckMembers(bytes.NewReader(data), comp, "/persistent")
				if tt.why == "" {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				var me *MemberError
				if !errors.Is(err, ErrUnsafeMember) || !errors.As(err, &me) {
					t.Fatalf("err = %v, want a *MemberError", err)
				}
				if !strings.Contains(err.Error(), tt.why) {
					t.Errorf("err = %v, want it to say %q", err, tt.why)
				}
			})
		}
	}
	if err := CheckMembers(bytes.NewReader([]byte("not zstd")), "zstd", "/persistent"); err == nil || errors.Is(err, ErrUnsafeMember) {
		t.Errorf("garbage: %v", err)
	}
}

// sealedArchive writes a crafted archive with its manifest and seal, as if
// Backup had taken it: only the members are hostile.
func sealedArchive(t *testing.T, ms []member, comp, source string) Archive {
	t.Helper()
	data := compress(t, craftTar(t, ms), comp)
	dir := t.TempDir()
	p := filepath.Join(dir, "vps-crafted.tar")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	m := Manifest{Version: 1, Host: "vps", Source: source, Archive: filepath.Base(p), Compression: comp, SHA256: hex.EncodeToString(sum[:]), ArchiveBytes: int64(len(data)), Created: time.Now().UTC()}
	if err := writeJSON(p+ManifestSuffix, m); err != nil {
		t.Fatal(err)
	}
	if err := writeSeal("", m); err != nil {
		t.Fatal(err)
	}
	a, err := OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A crafted archive that would write outside the directory is refused
// before anything runs on the target: no probe, no services stopped,
// nothing unpacked (real tar would have been the next command).
func TestRestoreRefusesHostileMembers(t *testing.T) {
	testutil.Need(t, "tar")
	base := t.TempDir()
	dst := filepath.Join(base, "persistent")
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]member{
		"dot dot":        {dir("./"), file("./../outside/evil")},
		"through a link": {dir("./"), symlink("./o", outside), file("./o/evil")},
		"absolute":       {file(filepath.Join(outside, "evil"))},
		"hard link out":  {hardlink("./evil", "../outside/x")},
	}
	for name, ms := range cases {
		for _, comp := range []string{"gzip", "none"} {
			t.Run(comp+"/"+name, func(t *testing.T) {
				a := sealedArchive(t, ms, comp, dst)
				r := &localRemote{}
				_, err := Restore(context.Background(), r, a, RestoreOptions{Host: "vps", Services: []string{"app.service"}}, nil)
				if !errors.Is(err, ErrUnsafeMember) {
					t.Fatalf("err = %v, want ErrUnsafeMember", err)
				}
				if !strings.Contains(err.Error(), "nothing was unpacked") || !strings.Contains(err.Error(), "do not restore it") {
					t.Errorf("err = %v: want it to say nothing happened and what to do", err)
				}
				if c := r.commands(); len(c) != 0 {
					t.Errorf("ran on the target although refused: %q", c)
				}
				if _, err := os.Stat(filepath.Join(outside, "evil")); err == nil {
					t.Error("a file landed outside")
				}
				if _, err := os.Stat(dst); err == nil {
					t.Error("the target directory was created")
				}
			})
		}
	}
}

// The manifest is bound to the archive: edited afterwards (another source,
// another host), or without a seal on this machine, it is refused before
// anything runs; the restore goes only into the archive's source unless the
// caller says otherwise.
func TestRestoreManifestBinding(t *testing.T) {
	testutil.Need(t, "tar")
	testutil.Need(t, "zstd")
	base := t.TempDir()
	src := filepath.Join(base, "persistent")
	makeTree(t, src)
	want, _ := treeHash(t, src)
	seals := filepath.Join(base, "seals")
	a, err := Backup(context.Background(), &localRemote{}, BackupOptions{Plaintext: true, Host: "vps", Source: src, Dir: filepath.Join(base, "backups"), SealDir: seals}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(seals, a.Manifest.SHA256+".json")); err != nil {
		t.Fatalf("no seal written: %v", err)
	}
	pristine, err := os.ReadFile(a.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(t *testing.T, f func(m map[string]any)) Archive {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(pristine, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		if err := os.WriteFile(a.ManifestPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(a.ManifestPath, pristine, 0o600) })
		ed, err := OpenArchive(a.Path)
		if err != nil {
			t.Fatal(err)
		}
		return ed
	}
	elsewhere := filepath.Join(base, "etc")

	refusals := []struct {
		name  string
		arch  func(t *testing.T) Archive
		opts  RestoreOptions
		want  error
		words []string
	}{
		{"another source in the manifest", func(t *testing.T) Archive { return edit(t, func(m map[string]any) { m["source"] = elsewhere }) },
			RestoreOptions{Host: "vps"}, ErrManifestEdited, []string{"source is " + elsewhere + ", the backup wrote " + src, "nothing was restored"}},
		{"another source, even with AnotherTarget", func(t *testing.T) Archive { return edit(t, func(m map[string]any) { m["source"] = elsewhere }) },
			RestoreOptions{Host: "vps", Target: elsewhere, AnotherTarget: true}, ErrManifestEdited, []string{"source is"}},
		{"another host in the manifest", func(t *testing.T) Archive { return edit(t, func(m map[string]any) { m["host"] = "other" }) },
			RestoreOptions{Host: "other"}, ErrManifestEdited, []string{"host is other, the backup wrote vps"}},
		{"a sha256 that is a path", func(t *testing.T) Archive {
			return edit(t, func(m map[string]any) { m["sha256"] = "../../../etc/passwd" })
		},
			RestoreOptions{Host: "vps"}, ErrCorrupt, nil},
		{"another directory without consent", func(t *testing.T) Archive { return a },
			RestoreOptions{Host: "vps", Target: elsewhere}, ErrOtherTarget, []string{"goes back only there", src}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			r := &localRemote{}
			o := tt.opts
			o.SealDir = seals
			_, err := Restore(context.Background(), r, tt.arch(t), o, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
			if c := r.commands(); len(c) != 0 {
				t.Errorf("ran on the target although refused: %q", c)
			}
			if _, err := os.Stat(elsewhere); err == nil {
				t.Errorf("%s was created", elsewhere)
			}
		})
	}

	t.Run("no seal on this machine", func(t *testing.T) {
		r := &localRemote{}
		_, err := Restore(context.Background(), r, a, RestoreOptions{Host: "vps", SealDir: t.TempDir()}, nil)
		if !errors.Is(err, ErrUnsealed) || !strings.Contains(err.Error(), "restore it from the machine and account that took the backup") {
			t.Fatalf("err = %v, want ErrUnsealed with the fix", err)
		}
		if c := r.commands(); len(c) != 0 {
			t.Errorf("ran on the target although refused: %q", c)
		}
	})
	t.Run("a sha256 that is a path never names a file", func(t *testing.T) {
		bad := a
		bad.Manifest.SHA256 = "../../" + strings.Repeat("a", 58)
		if err := CheckSeal(seals, bad); !errors.Is(err, ErrManifestEdited) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("into its own source", func(t *testing.T) {
		if err := os.RemoveAll(src); err != nil {
			t.Fatal(err)
		}
		if err := VerifyArchive(a, seals, "", ""); err != nil {
			t.Fatalf("VerifyArchive: %v", err)
		}
		if _, err := Restore(context.Background(), &localRemote{}, a, RestoreOptions{Host: "vps", SealDir: seals}, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := treeHash(t, src); got != want {
			t.Error("the restored tree differs from the original")
		}
	})
	t.Run("into another directory with consent", func(t *testing.T) {
		other := filepath.Join(base, "copy")
		if _, err := Restore(context.Background(), &localRemote{}, a, RestoreOptions{Host: "vps", SealDir: seals, Target: other, AnotherTarget: true}, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := treeHash(t, other); got != want {
			t.Error("the restored tree differs from the original")
		}
	})
}
