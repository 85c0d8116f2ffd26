package bundle

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestChangeCapabilities(t *testing.T) {
	all := []string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"}
	base := []string{"CAP_NET_RAW", "CAP_CHOWN"}
	cases := []struct {
		name      string
		add, drop []string
		want      []string
		err       string
	}{
		{name: "none", want: []string{"CAP_CHOWN", "CAP_NET_RAW"}},
		{name: "add", add: []string{"NET_ADMIN"}, want: []string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_RAW"}},
		{name: "drop", drop: []string{"NET_RAW"}, want: []string{"CAP_CHOWN"}},
		{name: "prefix and case", add: []string{"CAP_NET_ADMIN", "sys_time"}, drop: []string{"cap_chown"}, want: []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_TIME"}},
		{name: "drop ALL", drop: []string{"ALL"}, want: []string{}},
		{name: "drop ALL add one", add: []string{"NET_BIND_SERVICE"}, drop: []string{"ALL"}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "add ALL drop one", add: []string{"ALL"}, drop: []string{"SYS_ADMIN"}, want: []string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_RAW"}},
		{name: "add ALL and drop ALL", add: []string{"ALL"}, drop: []string{"ALL"}, want: []string{}},
		{name: "drop wins over add", add: []string{"NET_ADMIN"}, drop: []string{"NET_ADMIN"}, want: []string{"CAP_CHOWN", "CAP_NET_RAW"}},
		{name: "unknown", add: []string{"NET_ADMIN", "FLY"}, drop: []string{"CAP_SWIM"}, err: "unknown capabilities: FLY, CAP_SWIM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChangeCapabilities(base, all, tc.add, tc.drop)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got == nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestCapabilityNames(t *testing.T) {
	// CapEff of a process with CAP_NET_ADMIN (12) and CAP_NET_RAW (13),
	// and bits past the known capabilities.
	if got := CapabilitiesOf(0x3000 | 1<<63); !slices.Equal(got, []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}) {
		t.Errorf("CapabilitiesOf(0x3000) = %v", got)
	}
	if n := len(AllCapabilities()); n != 41 || AllCapabilities()[40] != "CAP_CHECKPOINT_RESTORE" || AllCapabilities()[21] != "CAP_SYS_ADMIN" {
		t.Errorf("%d capabilities: numbering is off", n)
	}
	for _, c := range DefaultCapabilities {
		if !slices.Contains(AllCapabilities(), c) {
			t.Errorf("default %s is unknown", c)
		}
	}
}

func TestHostDevices(t *testing.T) {
	if _, err := os.Stat("/dev/null"); err != nil {
		t.Skip("no /dev/null here")
	}
	devs, err := HostDevices()
	if err != nil {
		t.Fatal(err)
	}
	var null bool
	for _, d := range devs {
		if d.Path == "/dev/null" {
			null = d.Type == "c" && d.Major == 1 && d.Minor == 3 && d.FileMode != nil && *d.FileMode == 0o666
		}
		if d.Path == "/dev/console" || strings.HasPrefix(d.Path, "/dev/pts/") || strings.HasPrefix(d.Path, "/dev/shm/") {
			t.Errorf("%s listed", d.Path)
		}
		if d.Type != "c" && d.Type != "b" {
			t.Errorf("%s of type %q", d.Path, d.Type)
		}
	}
	if !null {
		t.Errorf("/dev/null is not c 1:3 0666 in %+v", devs)
	}
}
