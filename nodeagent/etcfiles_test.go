package nodeagent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mixed := write("mixed", "search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions ndots:2\n")
	stubOnly := write("stub", "nameserver 127.0.0.53\noptions edns0\n")
	resolved := write("resolved", "nameserver 10.0.0.9\nnameserver ::1\n")
	cases := []struct{ path, stub, want string }{
		{mixed, resolved, "search example.com\nnameserver 10.0.0.2\noptions ndots:2\n"},
		{stubOnly, resolved, "nameserver 10.0.0.9\n"},
		{stubOnly, filepath.Join(dir, "absent"), "options edns0\n"},
		{filepath.Join(dir, "absent"), resolved, ""},
	}
	for _, c := range cases {
		got, err := instanceResolvConf(c.path, c.stub)
		if err != nil || string(got) != c.want {
			t.Errorf("instanceResolvConf(%s, %s) = %q, %v; want %q", filepath.Base(c.path), filepath.Base(c.stub), got, err, c.want)
		}
	}
	if got := string(instanceHosts("web-1", "10.88.0.7")); got != "# Written by skiff for this Instance.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.88.0.7\tweb-1\n" {
		t.Errorf("hosts %q", got)
	}
}
