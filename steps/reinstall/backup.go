package reinstall

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/bigbang-nix/bigbang/steps"
)

// Remote runs one shell command on the target, with the given streams. The
// command is a shell string: everything in it that came from outside was
// quoted with steps.ShellQuote. sshexec's sessions satisfy it through a small
// adapter; the tests use a local shell and the real-sshd test host.
type Remote interface {
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
}

// DefaultSource is the directory a backup takes by default: the
// impermanence root of the deployment plan, where all state lives.
const DefaultSource = "/persistent"

// IncompleteSuffix ends the name of an archive until it has been verified.
const IncompleteSuffix = ".incomplete"

// ManifestSuffix ends the name of the manifest beside an archive.
const ManifestSuffix = ".manifest.json"

// Sentinel errors of backup and restore; match them with errors.Is.
var (
	// ErrIncomplete: the archive was not completed and verified; the
	// partial file carries IncompleteSuffix.
	ErrIncomplete = errors.New("backup incomplete")
	// ErrNoSpace: the local disk has too little room for the backup.
	ErrNoSpace = errors.New("not enough local disk space")
	// ErrSourceMissing: the directory to back up does not exist.
	ErrSourceMissing = errors.New("backup source missing")
	// ErrVerify: counts or bytes disagree between the archive and the
	// target.
	ErrVerify = errors.New("verification failed")
	// ErrOtherHost: the archive was taken from another machine.
	ErrOtherHost = errors.New("archive is from another host")
	// ErrCorrupt: the archive's checksum does not match its manifest.
	ErrCorrupt = errors.New("archive checksum mismatch")
	// ErrRestoreIncomplete: the restore stopped before it was verified.
	ErrRestoreIncomplete = errors.New("restore incomplete")
	// ErrUnsafeMember: an archive member would land outside the directory
	// it is unpacked into (see CheckMembers); it comes as a *MemberError.
	// Nothing was unpacked.
	ErrUnsafeMember = errors.New("unsafe archive member")
	// ErrManifestEdited: the manifest beside an archive is not the one
	// Backup wrote with it (see CheckSeal). Nothing was restored.
	ErrManifestEdited = errors.New("manifest edited after the backup")
	// ErrUnsealed: no seal of the archive is kept on this machine, so its
	// manifest cannot be trusted. Nothing was restored.
	ErrUnsealed = errors.New("archive has no seal")
	// ErrChanging: files changed while the backup read them (something
	// writes into the source).
	ErrChanging = errors.New("files changed while they were read")
	// ErrOtherTarget: the restore was asked to go into another directory
	// than the archive's source without RestoreOptions.AnotherTarget.
	ErrOtherTarget = errors.New("restore into another directory than the archive's source")
)

// BackupOptions says what to back up and where to put it.
type BackupOptions struct {
	Host               string // the target as the operator named it; recorded in the manifest
	HostKeyFingerprint string // "SHA256:…" of the target's host key; recorded in the manifest
	Source             string // remote directory; DefaultSource when empty
	Dir                string // local directory for the archive (created 0700)
	Sudo               bool   // run the remote commands through `sudo -n`
	// StatFS returns the free bytes of the file system holding path;
	// nil uses statfs(2). Tests inject a small disk.
	StatFS func(path string) (int64, error)
	// Margin is kept free beyond the backup's size; 0 means 64 MiB.
	Margin int64
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// SealDir is where the archive's seal goes (see CheckSeal); default
	// SealDir().
	SealDir string
	// The archive holds the host key and every secret: it is encrypted
	// with age to Recipients (the --backup-recipient values: age1… or
	// files of them), or when there are none to the age recipients of
	// SopsConfig (the flake's .sops.yaml). With neither the backup is
	// refused (ErrNoRecipient) unless Plaintext, the operator's explicit
	// choice of an archive in the clear.
	Recipients []string
	SopsConfig string
	Plaintext  bool
	// Identity is the operator's age identity file ("": where sops looks,
	// see DefaultIdentityFiles). Before anything runs, one of its
	// identities must be a recipient, so that the restore can open the
	// archive; it is read, never written or shown.
	Identity string
}

// Progress is reported while an archive streams.
type Progress struct {
	Bytes   int64         // bytes of files streamed so far (uncompressed)
	Total   int64         // expected bytes of files (measured on the target first); 0 when unknown
	Archive int64         // bytes of the compressed archive so far
	Rate    float64       // bytes per second, uncompressed
	ETA     time.Duration // 0 when unknown
	Elapsed time.Duration
}

// Manifest describes an archive; it lies beside it as JSON.
type Manifest struct {
	Version            int       `json:"version"`
	Host               string    `json:"host"`
	HostKeyFingerprint string    `json:"host_key_fingerprint"`
	Created            time.Time `json:"created"`
	Source             string    `json:"source"`
	Archive            string    `json:"archive"` // file name, beside the manifest
	Compression        string    `json:"compression"`
	TarOptions         []string  `json:"tar_options"`
	Entries            int64     `json:"entries"`    // files, directories, links (not the root)
	Bytes              int64     `json:"bytes"`      // bytes of regular files, hard links once
	DiskUsage          int64     `json:"disk_usage"` // du -sb on the target
	ArchiveBytes       int64     `json:"archive_bytes"`
	SHA256             string    `json:"sha256"` // of the file as it lies on disk (the ciphertext when encrypted)
	Seconds            float64   `json:"seconds"`
	// Encryption is EncryptionAge or EncryptionNone ("" in manifests
	// written before archives were encrypted: none). An age archive is
	// encrypted to Recipients; PlaintextSHA256 is the SHA-256 of the
	// (compressed) tar stream inside it, checked after decryption.
	Encryption      string   `json:"encryption"`
	Recipients      []string `json:"recipients,omitempty"`
	PlaintextSHA256 string   `json:"plaintext_sha256,omitempty"`
}

// Encrypted reports whether the archive is encrypted with age.
func (m Manifest) Encrypted() bool { return m.Encryption == EncryptionAge }

// Archive is a completed, verified backup.
type Archive struct {
	Path         string
	ManifestPath string
	Manifest     Manifest
}

// OpenArchive reads the manifest beside an archive.
func OpenArchive(path string) (Archive, error) {
	if strings.HasSuffix(path, IncompleteSuffix) {
		return Archive{}, fmt.Errorf("%s: %w: this backup never completed; take a new one", path, ErrIncomplete)
	}
	mp := path + ManifestSuffix
	b, err := os.ReadFile(mp)
	if err != nil {
		return Archive{}, fmt.Errorf("reading the manifest of %s: %w: the manifest must lie beside the archive", path, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Archive{}, fmt.Errorf("manifest %s is not valid JSON: %w", mp, err)
	}
	return Archive{Path: path, ManifestPath: mp, Manifest: m}, nil
}

// IncompleteError is returned when a backup stopped before it was verified.
// Path names the partial file, which ends in IncompleteSuffix.
type IncompleteError struct {
	Path string
	Err  error
}

// Error names the partial file and says it is not a backup.
func (e *IncompleteError) Error() string {
	return fmt.Sprintf("backup incomplete: %v; the partial file %s is not a backup: delete it and run the backup again", e.Err, e.Path)
}

// Unwrap lets errors.Is find ErrIncomplete and the cause.
func (e *IncompleteError) Unwrap() []error { return []error{ErrIncomplete, e.Err} }

// remoteInfo is what one probe of the target tells a backup or restore.
type remoteInfo struct {
	missing              bool
	du, entries, bytes   int64
	zstd, gzip           bool
	xattrs, acls, sparse bool
}

// probeScript reads the sizes of dir and what the remote tar can do. It
// runs once before the stream. GNU find's -printf counts names with
// newlines correctly; sockets are left out because tar does not archive
// them; hard links count their bytes once, as tar stores them. awk sums
// in doubles and prints with %.0f: %d stops at 2 GiB in mawk.
func probeScript(dir string) string {
	q := steps.ShellQuote(dir)
	return `export LC_ALL=C
command -v zstd >/dev/null 2>&1 && echo zstd=1
command -v gzip >/dev/null 2>&1 && echo gzip=1
h=$(tar --help 2>/dev/null)
case $h in *--xattrs*) echo xattrs=1;; esac
case $h in *--acls*) echo acls=1;; esac
case $h in *--sparse*) echo sparse=1;; esac
if [ ! -d ` + q + ` ]; then echo missing=1; exit 0; fi
cd ` + q + ` || exit 3
echo du=$(du -sb . | cut -f1)
echo entries=$(find . -mindepth 1 ! -type s -printf . | wc -c)
echo bytes=$(find . -type f -printf '%D:%i %s\n' | awk '!seen[$1]++ {t += $2} END {printf "%.0f", t}')
`
}

func parseProbe(out []byte) remoteInfo {
	var ri remoteInfo
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "zstd":
			ri.zstd = true
		case "gzip":
			ri.gzip = true
		case "xattrs":
			ri.xattrs = true
		case "acls":
			ri.acls = true
		case "sparse":
			ri.sparse = true
		case "missing":
			ri.missing = true
		case "du":
			ri.du = n
		case "entries":
			ri.entries = n
		case "bytes":
			ri.bytes = n
		}
	}
	return ri
}

// wrap makes cmd run through sudo when asked: the whole script goes to one
// `sh -c` so every part of it runs as root.
func wrap(cmd string, sudo bool) string {
	if !sudo {
		return cmd
	}
	return "sudo -n sh -c " + steps.ShellQuote(cmd)
}

func probe(ctx context.Context, r Remote, dir string, sudo bool) (remoteInfo, error) {
	var out bytes.Buffer
	errb := &tailBuffer{max: 8 << 10}
	if err := r.Run(ctx, wrap(probeScript(dir), sudo), nil, &out, errb); err != nil {
		return remoteInfo{}, fmt.Errorf("reading the size of %s on the target: %w: %s", dir, err, errb.String())
	}
	return parseProbe(out.Bytes()), nil
}

// compression picks the archive's compression: zstd when the target has
// it, else gzip, else none.
func compression(ri remoteInfo) string {
	if ri.zstd {
		return "zstd"
	}
	if ri.gzip {
		return "gzip"
	}
	return "none"
}

func tarFlags(ri remoteInfo) (flags, names []string) {
	flags = []string{"--numeric-owner"}
	if ri.sparse {
		flags, names = append(flags, "--sparse"), append(names, "sparse")
	}
	if ri.xattrs {
		flags, names = append(flags, "--xattrs", "--xattrs-include=*"), append(names, "xattrs")
	}
	if ri.acls {
		flags, names = append(flags, "--acls"), append(names, "acls")
	}
	return flags, names
}

// compressProgram is tar's --use-compress-program for a compression; tar
// adds -d itself when extracting.
func compressProgram(c string) []string {
	switch c {
	case "zstd":
		return []string{"--use-compress-program=zstd -T0 -3 -q"}
	case "gzip":
		return []string{"--use-compress-program=gzip -1"}
	}
	return nil
}

func suffixFor(c string) string {
	switch c {
	case "zstd":
		return ".tar.zst"
	case "gzip":
		return ".tar.gz"
	}
	return ".tar"
}

// BackupCommand returns the remote command that streams dir as a tar
// archive on standard output.
func BackupCommand(dir, comp string, tarOpts []string) string {
	argv := append([]string{"tar", "--create", "--file=-", "--directory=" + dir}, tarOpts...)
	argv = append(argv, compressProgram(comp)...)
	argv = append(argv, ".")
	return "LC_ALL=C " + steps.ShellJoin(argv)
}

func statfsFree(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Backup streams opts.Source from the target into a local archive: it
// measures the source first and refuses to start when the local disk is too
// small, then streams a tar archive (numeric owners, modes, symlinks, hard
// links, sparse files, and xattrs and ACLs where the remote tar has them)
// into a 0600 file, hashing it on the way and reading the stream back to
// count entries and bytes. Only a verified archive loses its
// IncompleteSuffix; anything else returns an *IncompleteError naming the
// partial file. The archive holds the machine's secrets.
func Backup(ctx context.Context, r Remote, opts BackupOptions, progress func(Progress)) (Archive, error) {
	src := opts.Source
	if src == "" {
		src = DefaultSource
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	statfs := opts.StatFS
	if statfs == nil {
		statfs = statfsFree
	}
	margin := opts.Margin
	if margin == 0 {
		margin = 64 << 20
	}
	// Who can open the archive is settled before anything runs.
	recipients, ids, err := prepareEncryption(opts)
	if err != nil {
		return Archive{}, fmt.Errorf("backup: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return Archive{}, fmt.Errorf("backup: creating %s: %w", opts.Dir, err)
	}

	ri, err := probe(ctx, r, src, opts.Sudo)
	if err != nil {
		return Archive{}, fmt.Errorf("backup: %w", err)
	}
	if ri.missing {
		return Archive{}, fmt.Errorf("backup: %w: %s does not exist on %s; pass the directory that holds the machine's state with --source", ErrSourceMissing, src, opts.Host)
	}
	free, err := statfs(opts.Dir)
	if err != nil {
		return Archive{}, fmt.Errorf("backup: free space of %s: %w", opts.Dir, err)
	}
	if free < ri.du+margin {
		return Archive{}, fmt.Errorf("backup: %w: %s on %s needs up to %s here, %s has %s free: free some space or choose another folder with --backup-dir",
			ErrNoSpace, src, opts.Host, steps.FormatBytes(ri.du+margin), opts.Dir, steps.FormatBytes(free))
	}

	comp := compression(ri)
	flags, names := tarFlags(ri)
	start := now()
	base := fmt.Sprintf("%s-%s-%s%s", fileSafe(opts.Host), start.UTC().Format("20060102-150405"), fileSafe(filepath.Base(src)), suffixFor(comp))
	if recipients != nil {
		base += AgeSuffix
	}
	final := filepath.Join(opts.Dir, base)
	partial := final + IncompleteSuffix
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Archive{}, fmt.Errorf("backup: %w", err)
	}
	fail := func(err error) (Archive, error) {
		return Archive{}, &IncompleteError{Path: partial, Err: err}
	}

	// The stream's bytes are hashed, listed and checked member by member
	// as they arrive (s.sum, s.count); encrypted, they reach the file
	// through age, and the file's own bytes are hashed and counted on the
	// way to it (disk).
	disk := &hashCounter{w: f}
	var out io.Writer = disk
	var ew io.WriteCloser
	if recipients != nil {
		disk.sum = sha256.New()
		if ew, err = encrypter(disk, recipients); err != nil {
			f.Close()
			return fail(err)
		}
		out = ew
	}
	s := &stream{file: out, sum: sha256.New(), total: ri.bytes, start: time.Now(), progress: progress, members: newMemberCheck(src)}
	res, err := s.run(ctx, r, wrap(BackupCommand(src, comp, flags), opts.Sudo), comp)
	if ew != nil && err == nil {
		// The last chunk and its tag.
		if cerr := ew.Close(); cerr != nil {
			err = fmt.Errorf("writing the archive here: %w", cerr)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w: the local disk filled up during the backup", ErrNoSpace)
		}
		if errors.Is(err, ErrUnsafeMember) {
			// Found now, before anything is wiped, rather than by the
			// restore afterwards.
			err = fmt.Errorf("%w: the restore would refuse it; on the target, look at that entry of %s (tar does not archive through links: something rewrote the tree during the backup), then run the backup again", err, src)
		}
		return fail(err)
	}
	if res.entries != ri.entries || res.bytes != ri.bytes {
		return fail(fmt.Errorf("%w: the archive holds %d entries and %d bytes of files, %s on the target has %d entries and %d bytes: stop the services writing to it and run the backup again",
			ErrVerify, res.entries, res.bytes, src, ri.entries, ri.bytes))
	}
	m := Manifest{
		Version: 2, Host: opts.Host, HostKeyFingerprint: opts.HostKeyFingerprint, Created: start.UTC(),
		Source: src, Archive: base, Compression: comp, TarOptions: names,
		Entries: res.entries, Bytes: res.bytes, DiskUsage: ri.du, ArchiveBytes: disk.n,
		SHA256: hex.EncodeToString(s.sum.Sum(nil)), Seconds: time.Since(s.start).Seconds(),
		Encryption: EncryptionNone,
	}
	if recipients != nil {
		m.Encryption, m.Recipients, m.PlaintextSHA256 = EncryptionAge, recipients, m.SHA256
		m.SHA256 = hex.EncodeToString(disk.sum.Sum(nil))
		// The identity that will restore it opens what lies on disk.
		if err := opensFile(partial, ids); err != nil {
			return fail(fmt.Errorf("%w: the archive just written does not decrypt with %s: %w", ErrVerify, ids.where(opts.Identity), err))
		}
	}
	mp := final + ManifestSuffix
	if err := writeJSON(mp, m); err != nil {
		return fail(err)
	}
	if err := writeSeal(opts.SealDir, m); err != nil {
		return fail(err)
	}
	if err := os.Rename(partial, final); err != nil {
		return fail(err)
	}
	return Archive{Path: final, ManifestPath: mp, Manifest: m}, nil
}

// writeJSON writes v to path with mode 0600, through a temporary file so
// that a half-written manifest never exists under the real name.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// hashCounter counts, and hashes when sum is set, the bytes written
// through it to w.
type hashCounter struct {
	w   io.Writer
	sum hash.Hash
	n   int64
}

func (h *hashCounter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	if h.sum != nil {
		h.sum.Write(p[:n])
	}
	h.n += int64(n)
	return n, err
}

// opensFile proves that ids open the age file at path: its header and
// its first chunk decrypt.
func opensFile(path string, ids *Identities) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, err := ids.decrypter(f)
	if err != nil {
		return err
	}
	var b [512]byte
	if _, err := io.ReadFull(pr, b[:]); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// stream carries one archive from the remote command into the local file
// and, at the same pace, into a reader that counts what the archive holds.
// The pipe between them has no buffer of its own: memory stays flat
// whatever the size of the archive.
type stream struct {
	file     io.Writer
	sum      hash.Hash
	archive  atomic.Int64
	total    int64
	start    time.Time
	progress func(Progress)
	// members checks each member as Restore will (nil: no check).
	members *memberCheck

	mu       sync.Mutex
	lastTell time.Time
	writeErr error // the first local write error: the remote then only sees a closed pipe
}

type tarCount struct {
	entries, bytes int64
}

func (s *stream) Write(p []byte) (int, error) {
	n, err := s.file.Write(p)
	s.archive.Add(int64(n))
	if err != nil {
		s.mu.Lock()
		if s.writeErr == nil {
			s.writeErr = err
		}
		s.mu.Unlock()
	}
	return n, err
}

func (s *stream) run(ctx context.Context, r Remote, cmd, comp string) (tarCount, error) {
	pr, pw := newChunkPipe()
	done := make(chan struct{})
	var count tarCount
	var verr error
	go func() {
		defer close(done)
		// The hash is taken here, on the reading side, so that hashing and
		// receiving run side by side; the bytes are those written to the
		// file.
		hashed := io.TeeReader(pr, s.sum)
		count, verr = s.count(hashed, comp)
		// Reading stops at the end of the archive or at an error: drain or
		// fail the writer so the remote command never blocks on us.
		if verr != nil {
			pr.CloseWithError(verr)
		} else {
			_, _ = io.Copy(io.Discard, hashed)
		}
	}()
	errb := &tailBuffer{max: 16 << 10}
	err := r.Run(ctx, cmd, nil, io.MultiWriter(s, pw), errb)
	pw.CloseWithError(err)
	<-done
	s.mu.Lock()
	werr := s.writeErr
	s.mu.Unlock()
	switch {
	case werr != nil:
		return count, fmt.Errorf("writing the archive here: %w", werr)
	case err != nil && ctx.Err() != nil:
		return count, fmt.Errorf("interrupted: %w", ctx.Err())
	case err != nil:
		// GNU tar exits 1 with this warning when a file changed under it:
		// the archive may be inconsistent, so it is not a backup.
		if strings.Contains(errb.String(), "changed as we read") {
			return count, fmt.Errorf("%w: stop the services writing to them and run the backup again: %s", ErrChanging, errb.String())
		}
		if msg := strings.TrimSpace(errb.String()); msg != "" {
			return count, fmt.Errorf("%w: %s", err, msg)
		}
		return count, err
	case verr != nil:
		return count, fmt.Errorf("reading the archive back: %w", verr)
	}
	s.tell(count, true)
	return count, nil
}

// count reads the (compressed) archive and counts its entries and the bytes
// of its regular files, as the probe counted them on the target.
func (s *stream) count(r io.Reader, comp string) (tarCount, error) {
	var c tarCount
	var in io.Reader = r
	switch comp {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return c, err
		}
		in = zr
	case "zstd":
		// Decoded in this process: piping the decoded archive through a
		// zstd process costs a copy of every byte through the kernel.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return c, err
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		if s.members != nil {
			if err := s.members.check(h); err != nil {
				return c, err
			}
		}
		if h.Name == "./" || h.Name == "." {
			continue
		}
		c.entries++
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			c.bytes += h.Size
			s.tell(c, false)
		}
	}
}

// tell reports progress at most five times a second, and once at the end.
func (s *stream) tell(c tarCount, last bool) {
	if s.progress == nil {
		return
	}
	now := time.Now()
	s.mu.Lock()
	if !last && now.Sub(s.lastTell) < 200*time.Millisecond {
		s.mu.Unlock()
		return
	}
	s.lastTell = now
	s.mu.Unlock()
	el := now.Sub(s.start)
	p := Progress{Bytes: c.bytes, Total: s.total, Archive: s.archive.Load(), Elapsed: el}
	if el > 0 {
		p.Rate = float64(c.bytes) / el.Seconds()
	}
	if p.Rate > 0 && s.total > c.bytes {
		p.ETA = time.Duration(float64(s.total-c.bytes) / p.Rate * float64(time.Second))
	}
	s.progress(p)
}

// tailBuffer keeps the last max bytes written to it: enough of a remote
// command's standard error to explain a failure, without growing.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// chunkPipe is a pipe with a bounded queue between its ends: the writer (the
// SSH session's output) goes on while the reader (the read-back count)
// catches up, so the two run side by side instead of in lock step. At most
// chunkQueue chunks of at most chunkMax bytes wait: memory stays flat.
type chunkPipe struct {
	ch     chan []byte
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	rerr   error  // set by CloseWithError on the reading end
	werr   error  // set by CloseWithError on the writing end
	cur    []byte // the unread rest of orig
	orig   []byte
	pool   sync.Pool
	wdone  chan struct{}
	wclose sync.Once
}

const (
	chunkQueue = 64
	chunkMax   = 64 << 10
)

type chunkReader struct{ p *chunkPipe }
type chunkWriter struct{ p *chunkPipe }

func newChunkPipe() (*chunkReader, *chunkWriter) {
	p := &chunkPipe{ch: make(chan []byte, chunkQueue), closed: make(chan struct{}), wdone: make(chan struct{})}
	p.pool.New = func() any { b := make([]byte, 0, chunkMax); return &b }
	return &chunkReader{p}, &chunkWriter{p}
}

func (w *chunkWriter) Write(b []byte) (int, error) {
	p := w.p
	n := 0
	for len(b) > 0 {
		k := min(len(b), chunkMax)
		buf := p.pool.Get().(*[]byte)
		c := append((*buf)[:0], b[:k]...)
		select {
		case p.ch <- c:
		case <-p.closed:
			p.mu.Lock()
			err := p.rerr
			p.mu.Unlock()
			return n, err
		}
		n += k
		b = b[k:]
	}
	return n, nil
}

// CloseWithError ends the stream; the reader sees err, or io.EOF for nil.
func (w *chunkWriter) CloseWithError(err error) {
	w.p.wclose.Do(func() {
		if err == nil {
			err = io.EOF
		}
		w.p.mu.Lock()
		w.p.werr = err
		w.p.mu.Unlock()
		close(w.p.wdone)
	})
}

func (r *chunkReader) Read(b []byte) (int, error) {
	p := r.p
	if len(p.cur) == 0 {
		select {
		case c := <-p.ch:
			p.cur, p.orig = c, c
		default:
			select {
			case c := <-p.ch:
				p.cur, p.orig = c, c
			case <-p.wdone:
				// Queued chunks still come first.
				select {
				case c := <-p.ch:
					p.cur, p.orig = c, c
				default:
					p.mu.Lock()
					defer p.mu.Unlock()
					return 0, p.werr
				}
			}
		}
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	if len(p.cur) == 0 {
		c := p.orig[:0]
		p.pool.Put(&c)
		p.cur, p.orig = nil, nil
	}
	return n, nil
}

// CloseWithError makes further writes fail with err: the reader gave up.
func (r *chunkReader) CloseWithError(err error) {
	r.p.once.Do(func() {
		r.p.mu.Lock()
		r.p.rerr = err
		r.p.mu.Unlock()
		close(r.p.closed)
	})
}
