package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// User resolves an image's user string ("", "name", "uid", "uid:gid",
// "name:group", ...) to a uid and gid, reading /etc/passwd and /etc/group
// from the image's layers (bottom first) as the container will see them:
// the top layer holding the file wins. "" is root, 0:0. Without a group,
// the gid is the user's group in /etc/passwd, or 0 for a uid that has no
// entry. An unknown name is an error naming it.
func User(layers []string, user string) (uid, gid uint32, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if u == "" || (hasGroup && g == "") {
		return 0, 0, fmt.Errorf("user %q: want user[:group]", user)
	}
	uid, byUID := parseID(u)
	if !byUID || !hasGroup {
		passwd, err := readLayered(layers, "etc/passwd")
		if err != nil {
			return 0, 0, fmt.Errorf("user %q: %w", user, err)
		}
		e, ok := lookupPasswd(passwd, u, uid, byUID)
		switch {
		case ok:
			uid, gid = e.uid, e.gid
		case !byUID:
			return 0, 0, fmt.Errorf("user %q: no user %q in /etc/passwd", user, u)
		}
	}
	if !hasGroup {
		return uid, gid, nil
	}
	if n, ok := parseID(g); ok {
		return uid, n, nil
	}
	group, err := readLayered(layers, "etc/group")
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: %w", user, err)
	}
	gid, ok := lookupGroup(group, g)
	if !ok {
		return 0, 0, fmt.Errorf("user %q: no group %q in /etc/group", user, g)
	}
	return uid, gid, nil
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

type passwdEntry struct{ uid, gid uint32 }

// lookupPasswd finds a user in an /etc/passwd file by name, or by uid if
// byUID is set.
func lookupPasswd(file []byte, name string, uid uint32, byUID bool) (passwdEntry, bool) {
	for f := range lines(file) {
		if len(f) < 4 {
			continue
		}
		u, ok1 := parseID(f[2])
		g, ok2 := parseID(f[3])
		if ok1 && ok2 && ((byUID && u == uid) || (!byUID && f[0] == name)) {
			return passwdEntry{uid: u, gid: g}, true
		}
	}
	return passwdEntry{}, false
}

// lookupGroup finds a group's gid in an /etc/group file.
func lookupGroup(file []byte, name string) (uint32, bool) {
	for f := range lines(file) {
		if len(f) < 3 || f[0] != name {
			continue
		}
		if gid, ok := parseID(f[2]); ok {
			return gid, true
		}
	}
	return 0, false
}

// lines yields the colon-separated fields of each line of a passwd or
// group file, skipping blank lines and comments.
func lines(file []byte) iter.Seq[[]string] {
	return func(yield func([]string) bool) {
		sc := bufio.NewScanner(bytes.NewReader(file))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !yield(strings.Split(line, ":")) {
				return
			}
		}
	}
}

// readLayered reads the file rel as the overlay of layers would show it,
// or returns nil if it would show none.
func readLayered(layers []string, rel string) ([]byte, error) {
	for i := len(layers) - 1; i >= 0; i-- {
		b, found, hidden, err := readInLayer(layers[i], rel)
		if err != nil {
			return nil, fmt.Errorf("read /%s in layer %q: %w", rel, layers[i], err)
		}
		if found {
			return b, nil
		}
		if hidden {
			break
		}
	}
	return nil, nil
}

// readInLayer reads rel in one layer directory. Not found, it says whether
// the layer hides rel of the layers below: by a whiteout of it or of a
// directory on its way, or by an opaque directory on its way.
func readInLayer(layer, rel string) (b []byte, found, hidden bool, err error) {
	fd, err := unix.Open(layer, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, false, err
	}
	elems := strings.Split(rel, "/")
	opaque := false
	for i, c := range elems {
		var st unix.Stat_t
		err := unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			unix.Close(fd)
			return nil, false, opaque, nil
		}
		if err != nil {
			unix.Close(fd)
			return nil, false, false, err
		}
		switch typ := st.Mode & unix.S_IFMT; {
		case typ == unix.S_IFCHR && st.Rdev == 0:
			unix.Close(fd)
			return nil, false, true, nil // whiteout
		case typ == unix.S_IFREG && i == len(elems)-1:
			b, err := readAt(fd, c)
			unix.Close(fd)
			return b, err == nil, false, err
		case typ != unix.S_IFDIR || i == len(elems)-1:
			unix.Close(fd)
			return nil, false, false, fmt.Errorf("%q is not a regular file or directory (symlinks are not followed)", c)
		}
		next, err := openDirAt(fd, c)
		unix.Close(fd)
		if err != nil {
			return nil, false, false, err
		}
		fd = next
		opaque = opaque || isOpaque(fd)
	}
	unix.Close(fd)
	return nil, false, opaque, nil
}

func readAt(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(f)
}

func isOpaque(dirfd int) bool {
	buf := make([]byte, 1)
	n, err := unix.Fgetxattr(dirfd, opaqueXattr, buf)
	return err == nil && n == 1 && buf[0] == 'y'
}
