package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Whiteout names in layer tars (OCI image spec, "Representing Changes").
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// opaqueXattr marks a directory whose lower layers overlayfs hides.
const opaqueXattr = "trusted.overlay.opaque"

// unpack extracts the layer tar stream r into the directory dir in
// overlayfs form: a whiteout .wh.NAME becomes a 0:0 character device NAME
// and .wh..wh..opq marks its directory opaque.
//
// No entry can write outside dir: entries with ".." are rejected, and
// every path is walked one component at a time from dir without following
// symlinks, so a symlink in the layer is never a way out.
func unpack(ctx context.Context, dir string, r io.Reader) error {
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %q: %w", dir, err)
	}
	u := &unpacker{root: root, cacheFd: -1}
	defer u.close()
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	return u.dirTimes()
}

// unpacker extracts one layer.
type unpacker struct {
	root int // the layer directory
	// The parent directory of the last entry, kept open for the next one.
	// An entry only replaces things inside its parent, so the cached
	// directory stays valid until an entry with another parent replaces it.
	cacheDir string
	cacheFd  int
	// dirs are the directories whose times are set last, because adding
	// their entries changes them.
	dirs []dirTime
}

type dirTime struct {
	rel   string
	times []unix.Timespec
}

func (u *unpacker) close() {
	u.dropCache()
	unix.Close(u.root)
}

func (u *unpacker) dropCache() {
	if u.cacheFd >= 0 {
		unix.Close(u.cacheFd)
	}
	u.cacheDir, u.cacheFd = "", -1
}

// relPath returns a tar entry's path relative to the layer root, "" for
// the root itself. Leading slashes are dropped (an absolute name is a
// name inside the layer, as containerd reads it); an empty name, a NUL
// and ".." are rejected.
func relPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty path")
	}
	if strings.ContainsRune(name, 0) {
		return "", errors.New("path has a NUL byte")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New(`path has a ".." component`)
		}
	}
	return strings.TrimPrefix(path.Clean("/"+name), "/"), nil
}

// plainName refuses what is not one plain name inside a directory: the
// target of a whiteout must not be "", ".", ".." or a path.
func plainName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%q is not a plain name", name)
	}
	return nil
}

// devices are the character devices a layer may hold: those every OCI
// runtime gives a container anyway. Any other device node in the agent's
// data directory (a host disk's, say, with the mode the layer chooses)
// would be a way into the host; block devices are never allowed.
var devices = map[[2]int64]bool{
	{1, 3}: true, {1, 5}: true, {1, 7}: true, {1, 8}: true, {1, 9}: true, // null zero full random urandom
	{5, 0}: true, {5, 1}: true, {5, 2}: true, // tty console ptmx
	{0, 0}: true, // an overlayfs whiteout written as such
}

// openDir opens the directory rel under the root, creating missing
// directories when create is set. It never follows a symlink.
func (u *unpacker) openDir(rel string, create bool) (int, error) {
	fd, err := unix.Dup(u.root)
	if err != nil {
		return -1, err
	}
	if rel == "" {
		return fd, nil
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := openDirAt(fd, c)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openDirAt(fd, c)
			}
		}
		unix.Close(fd)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("open %q: %q is a symlink or not a directory: %w", rel, c, err)
		}
		if err != nil {
			return -1, fmt.Errorf("open %q: %w", rel, err)
		}
		fd = next
	}
	return fd, nil
}

func openDirAt(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// parent returns an open descriptor of rel's parent directory, owned by
// the unpacker.
func (u *unpacker) parent(rel string) (int, error) {
	dir := path.Dir(rel)
	if dir == "." {
		dir = ""
	}
	if u.cacheFd >= 0 && u.cacheDir == dir {
		return u.cacheFd, nil
	}
	u.dropCache()
	fd, err := u.openDir(dir, true)
	if err != nil {
		return -1, err
	}
	u.cacheDir, u.cacheFd = dir, fd
	return fd, nil
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := relPath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the layer root must be a directory")
		}
		return u.dirAttrs(u.root, "", hdr)
	}
	dirfd, err := u.parent(rel)
	if err != nil {
		return err
	}
	base := path.Base(rel)
	switch {
	case base == whiteoutOpaque:
		return unix.Fsetxattr(dirfd, opaqueXattr, []byte("y"), 0)
	case strings.HasPrefix(base, whiteoutMeta):
		return nil // other AUFS metadata: nothing for overlayfs
	case strings.HasPrefix(base, whiteoutPrefix):
		return u.whiteout(dirfd, strings.TrimPrefix(base, whiteoutPrefix))
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.mkdir(dirfd, base, rel, hdr)
	case tar.TypeReg:
		return u.file(dirfd, base, hdr, r)
	case tar.TypeSymlink:
		if err := removeAt(dirfd, base); err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, dirfd, base); err != nil {
			return err
		}
		return u.nodeAttrs(dirfd, base, hdr, false)
	case tar.TypeLink:
		return u.link(dirfd, base, rel, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return u.mknod(dirfd, base, hdr)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
}

// whiteout hides name of the lower layers: overlayfs's whiteout is a
// character device 0:0.
func (u *unpacker) whiteout(dirfd int, name string) error {
	if err := plainName(name); err != nil {
		return fmt.Errorf("whiteout: %w", err)
	}
	if err := removeAt(dirfd, name); err != nil {
		return err
	}
	return unix.Mknodat(dirfd, name, unix.S_IFCHR, 0)
}

func (u *unpacker) mkdir(dirfd int, base, rel string, hdr *tar.Header) error {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := removeAt(dirfd, base); err != nil {
			return err
		}
		if err := unix.Mkdirat(dirfd, base, 0o700); err != nil {
			return err
		}
	}
	fd, err := openDirAt(dirfd, base)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return u.dirAttrs(fd, rel, hdr)
}

// dirAttrs sets the directory fd's owner, mode and xattrs now and its
// times when the layer is done.
func (u *unpacker) dirAttrs(fd int, rel string, hdr *tar.Header) error {
	if err := fdAttrs(fd, hdr); err != nil {
		return err
	}
	u.dirs = append(u.dirs, dirTime{rel: rel, times: times(hdr)})
	return nil
}

func (u *unpacker) file(dirfd int, base string, hdr *tar.Header, r io.Reader) error {
	if err := removeAt(dirfd, base); err != nil {
		return err
	}
	fd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	_, err = io.Copy(f, r)
	if err == nil {
		err = fdAttrs(fd, hdr)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return unix.UtimesNanoAt(dirfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

// link makes base a hard link to target, a path in the layer.
func (u *unpacker) link(dirfd int, base, rel, target string) error {
	trel, err := relPath(target)
	if err != nil {
		return fmt.Errorf("link target %q: %w", target, err)
	}
	if trel == "" || trel == rel {
		return fmt.Errorf("bad link target %q", target)
	}
	dir := path.Dir(trel)
	if dir == "." {
		dir = ""
	}
	tdir, err := u.openDir(dir, false)
	if err != nil {
		return fmt.Errorf("link target %q: %w", target, err)
	}
	defer unix.Close(tdir)
	if err := removeAt(dirfd, base); err != nil {
		return err
	}
	// Without AT_SYMLINK_FOLLOW, linkat links a symlink itself.
	if err := unix.Linkat(tdir, path.Base(trel), dirfd, base, 0); err != nil {
		return fmt.Errorf("link to %q: %w", target, err)
	}
	return nil
}

func (u *unpacker) mknod(dirfd int, base string, hdr *tar.Header) error {
	kind := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		if !devices[[2]int64{hdr.Devmajor, hdr.Devminor}] {
			return fmt.Errorf("character device %d:%d: a layer may hold only null, zero, full, random, urandom, tty, console and ptmx", hdr.Devmajor, hdr.Devminor)
		}
		kind = unix.S_IFCHR
	case tar.TypeBlock:
		return fmt.Errorf("block device %d:%d: a layer may not hold block devices", hdr.Devmajor, hdr.Devminor)
	}
	if err := removeAt(dirfd, base); err != nil {
		return err
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(dirfd, base, kind|mode(hdr), int(dev)); err != nil {
		return err
	}
	return u.nodeAttrs(dirfd, base, hdr, true)
}

// nodeAttrs sets the owner, mode (unless a symlink) and times of base.
func (u *unpacker) nodeAttrs(dirfd int, base string, hdr *tar.Header, chmod bool) error {
	if err := unix.Fchownat(dirfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	// base was just created by us and is not a symlink: following is safe.
	if chmod {
		if err := unix.Fchmodat(dirfd, base, mode(hdr), 0); err != nil {
			return err
		}
	}
	return unix.UtimesNanoAt(dirfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

// fdAttrs sets the owner, mode and xattrs of an open file or directory.
// The mode comes after the owner, which clears setuid and setgid bits.
func fdAttrs(fd int, hdr *tar.Header) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, mode(hdr)); err != nil {
		return err
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		// A layer cannot set overlayfs's own attributes other than by
		// whiteouts.
		if !ok || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		err := unix.Fsetxattr(fd, name, []byte(v), 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("xattr %q: %w", name, err)
		}
	}
	return nil
}

// mode is the entry's permission bits, with setuid, setgid and sticky.
func mode(hdr *tar.Header) uint32 {
	return uint32(hdr.Mode) & 0o7777
}

func times(hdr *tar.Header) []unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// removeAt removes base in dirfd, if there is one, as a later entry
// replaces an earlier one.
func removeAt(dirfd int, base string) error {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(dirfd, base, 0)
	}
	return removeAllAt(dirfd, base)
}

// removeAllAt removes the directory base in dirfd and everything in it,
// without following symlinks.
func removeAllAt(dirfd int, base string) error {
	fd, err := openDirAt(dirfd, base)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), base)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = unix.Unlinkat(fd, n, 0); errors.Is(err, unix.EISDIR) {
				err = removeAllAt(fd, n)
			}
			if err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR)
}

// dirTimes sets the directories' times, deepest last-written first.
func (u *unpacker) dirTimes() error {
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		parent, base := path.Dir(d.rel), path.Base(d.rel)
		if d.rel == "" {
			parent, base = "", "."
		} else if parent == "." {
			parent = ""
		}
		fd, err := u.openDir(parent, false)
		if err != nil {
			return err
		}
		err = unix.UtimesNanoAt(fd, base, d.times, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("times of %q: %w", d.rel, err)
		}
	}
	return nil
}
