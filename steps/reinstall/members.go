package reinstall

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// MemberError is an archive member that would land outside the restore
// directory, or make a later member land there: bigbang unpacks as root and
// does not leave that to the target tar's defaults.
type MemberError struct {
	Name     string // the member as the archive names it
	Linkname string // its link target, for links
	Why      string
}

// Error names the member and why it is refused.
func (e *MemberError) Error() string {
	s := fmt.Sprintf("archive member %q", e.Name)
	if e.Linkname != "" {
		s += fmt.Sprintf(" (-> %q)", e.Linkname)
	}
	return s + " " + e.Why
}

// Unwrap makes errors.Is(err, ErrUnsafeMember) true.
func (e *MemberError) Unwrap() error { return ErrUnsafeMember }

// memberCheck checks the members of one archive in order, for a tree
// rooted at root (the directory on the target).
//
// What it guarantees is that unpacking writes nothing outside root: no
// member has an absolute name or a ".." component, no member (file, link
// or hard link target) lies under a symlink the archive made before it,
// and no hard link names a file outside. A symlink whose target leaves the
// tree is kept as a link, since state trees hold such links (a dangling
// one, a home-manager link into /nix/store) and creating one writes
// nothing outside: it is refused as soon as something would be written or
// linked through it. tar --create never archives anything under a symlink,
// so an archive that does was made by hand.
type memberCheck struct {
	root string
	// links are the symlink members so far, by clean name, with their
	// targets.
	links map[string]string
}

func newMemberCheck(root string) *memberCheck {
	return &memberCheck{root: root, links: map[string]string{}}
}

// cleanMember is a member name relative to the tree's root, or why it is
// not one: no absolute names, no ".." components.
func cleanMember(name string) (string, string) {
	if strings.HasPrefix(name, "/") {
		return "", "has an absolute name"
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", "has a \"..\" component"
		}
	}
	return path.Clean(name), ""
}

// underLink returns the symlink member that name lies under, if any.
func (c *memberCheck) underLink(name string) (string, string, bool) {
	for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if target, ok := c.links[dir]; ok {
			return dir, target, true
		}
	}
	return "", "", false
}

func (c *memberCheck) check(h *tar.Header) error {
	name, why := cleanMember(h.Name)
	if why != "" {
		return &MemberError{Name: h.Name, Why: why}
	}
	if dir, target, ok := c.underLink(name); ok {
		return &MemberError{Name: h.Name, Why: fmt.Sprintf("lies under %q, a symlink to %q of the same archive: it would be written through the link, maybe outside %s", dir, target, c.root)}
	}
	if h.Typeflag == tar.TypeLink {
		ln, why := cleanMember(h.Linkname)
		if why != "" {
			return &MemberError{Name: h.Name, Linkname: h.Linkname, Why: "is a hard link to a file outside " + c.root + " (its target " + why + ")"}
		}
		if dir, target, ok := c.underLink(ln); ok || c.links[ln] != "" {
			if !ok {
				dir, target = ln, c.links[ln]
			}
			return &MemberError{Name: h.Name, Linkname: h.Linkname, Why: fmt.Sprintf("is a hard link through %q, a symlink to %q of the same archive, maybe to a file outside %s", dir, target, c.root)}
		}
	}
	if h.Typeflag == tar.TypeSymlink {
		// Kept even when a later member of the same name follows: whether
		// the target's tar replaces the link or follows it is the kind of
		// default this check does not rely on.
		c.links[name] = h.Linkname
	}
	return nil
}

// decompress opens the tar stream of an archive of the given compression.
func decompress(r io.Reader, comp string) (io.Reader, func(), error) {
	switch comp {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() {}, nil
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case "none", "":
		return r, func() {}, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %q", comp)
}

// CheckMembers reads a whole (compressed) tar archive and refuses the first
// member that would write outside root once unpacked there: an absolute
// name, a ".." component, a hard link to a name outside or through a
// symlink of the archive, or any member under a symlink of the archive
// (which is how a link that leaves the tree is abused). The error is a
// *MemberError (ErrUnsafeMember).
func CheckMembers(r io.Reader, comp, root string) error {
	in, done, err := decompress(r, comp)
	if err != nil {
		return fmt.Errorf("reading the archive: %w", err)
	}
	defer done()
	mc := newMemberCheck(root)
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		if err := mc.check(h); err != nil {
			return err
		}
	}
}
