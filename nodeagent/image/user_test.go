package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// layerDir makes a layer directory holding files (path -> contents).
func layerDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestUser(t *testing.T) {
	base := layerDir(t, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nold:x:7:7::/:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
	})
	top := layerDir(t, map[string]string{
		"etc/passwd": "# top wins\nroot:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nbob:x:1001:1002::/:/bin/sh\n",
		"unrelated":  "",
	})
	layers := []string{base, top}
	for _, tc := range []struct {
		user     string
		uid, gid uint32
		err      string // in the error, if one is expected
	}{
		{user: "", uid: 0, gid: 0},
		{user: "root", uid: 0, gid: 0},
		{user: "app", uid: 1000, gid: 1000},
		{user: "bob", uid: 1001, gid: 1002},
		{user: "1001", uid: 1001, gid: 1002},
		{user: "4242", uid: 4242, gid: 0},
		{user: "1000:50", uid: 1000, gid: 50},
		{user: "app:staff", uid: 1000, gid: 50},
		{user: "4242:staff", uid: 4242, gid: 50},
		{user: "bob:7", uid: 1001, gid: 7},
		{user: "old", err: `no user "old"`},
		{user: "nobody", err: `no user "nobody"`},
		{user: "app:nogroup", err: `no group "nogroup"`},
		{user: ":50", err: "user[:group]"},
		{user: "app:", err: "user[:group]"},
	} {
		uid, gid, err := User(layers, tc.user)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("User(%q) error %v, want one with %q", tc.user, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("User(%q): %v", tc.user, err)
		case tc.err == "" && (uid != tc.uid || gid != tc.gid):
			t.Errorf("User(%q) = %d:%d, want %d:%d", tc.user, uid, gid, tc.uid, tc.gid)
		}
	}
}

func TestUserWithoutPasswd(t *testing.T) {
	layers := []string{layerDir(t, map[string]string{"bin/app": ""})}
	if uid, gid, err := User(layers, "65534:65534"); err != nil || uid != 65534 || gid != 65534 {
		t.Errorf("User(65534:65534) = %d:%d, %v", uid, gid, err)
	}
	if uid, gid, err := User(layers, "1000"); err != nil || uid != 1000 || gid != 0 {
		t.Errorf("User(1000) = %d:%d, %v; want 1000:0", uid, gid, err)
	}
	if _, _, err := User(layers, "app"); err == nil || !strings.Contains(err.Error(), `"app"`) {
		t.Errorf("User(app) without /etc/passwd: %v, want an error naming app", err)
	}
}

func TestUserHonoursWhiteouts(t *testing.T) {
	requireRoot(t)
	base := layerDir(t, map[string]string{"etc/passwd": "app:x:1000:1000::/:/bin/sh\n"})

	deleted := layerDir(t, map[string]string{"etc/other": ""})
	if err := unix.Mknod(filepath.Join(deleted, "etc/passwd"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	opaque := layerDir(t, map[string]string{"etc/other": ""})
	if err := unix.Setxattr(filepath.Join(opaque, "etc"), opaqueXattr, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	for name, top := range map[string]string{"whiteout": deleted, "opaque dir": opaque} {
		if _, _, err := User([]string{base, top}, "app"); err == nil {
			t.Errorf("%s: User found app in a hidden /etc/passwd", name)
		}
	}
	if uid, _, err := User([]string{base, layerDir(t, map[string]string{"etc/other": ""})}, "app"); err != nil || uid != 1000 {
		t.Errorf("User(app) through a plain upper /etc: %d, %v", uid, err)
	}
}
