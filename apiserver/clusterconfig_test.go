package apiserver

import (
	"strings"
	"testing"
)

// TestValidateCluster: every refusal of the cluster flags names its flag
// first, and the valid combinations pass.
func TestValidateCluster(t *testing.T) {
	const token = "skiff1:00:11"
	for _, tc := range []struct {
		name      string
		configure func(*Config)
		// flag starts the error; "" means the configuration is valid.
		flag string
		// also is another flag the error names, if any.
		also string
	}{
		{name: "own etcd", configure: func(*Config) {}},
		{name: "own etcd with an invalid name", configure: func(c *Config) { c.Name = "Not_A_Name" }},
		{name: "cluster-init", configure: func(c *Config) { c.ClusterInit = true }},
		{name: "cluster-init with advertise address and peer port", configure: func(c *Config) {
			c.ClusterInit, c.AdvertiseAddress, c.EtcdPeerPort = true, "10.0.0.2", 12380
		}},
		{name: "cluster-init with an IPv6 advertise address", configure: func(c *Config) {
			c.ClusterInit, c.AdvertiseAddress = true, "fd00::2"
		}},
		{name: "join with token", configure: func(c *Config) { c.Join, c.JoinToken = "https://10.0.0.1:6443", token }},
		{name: "join a host name with a path", configure: func(c *Config) { c.Join, c.JoinToken = "https://s1.example:6443/", token }},
		{name: "lowest peer port", configure: func(c *Config) { c.ClusterInit, c.EtcdPeerPort = true, 1 }},
		{name: "highest peer port", configure: func(c *Config) { c.ClusterInit, c.EtcdPeerPort = true, 65535 }},
		{name: "dotted node name", configure: func(c *Config) { c.ClusterInit, c.Name = true, "s1.example" }},

		{name: "cluster-init and join", flag: "--cluster-init", also: "--join", configure: func(c *Config) {
			c.ClusterInit, c.Join, c.JoinToken = true, "https://10.0.0.1:6443", token
		}},
		{name: "join without token", flag: "--join needs --token", configure: func(c *Config) { c.Join = "https://10.0.0.1:6443" }},
		{name: "token without join", flag: "--token goes with --join", configure: func(c *Config) { c.JoinToken = token }},
		{name: "token with cluster-init", flag: "--token goes with --join", configure: func(c *Config) {
			c.ClusterInit, c.JoinToken = true, token
		}},
		{name: "join over http", flag: `--join "http://10.0.0.1:6443"`, configure: func(c *Config) {
			c.Join, c.JoinToken = "http://10.0.0.1:6443", token
		}},
		{name: "join without host", flag: `--join "https://"`, configure: func(c *Config) { c.Join, c.JoinToken = "https://", token }},
		{name: "join a bare address", flag: `--join "10.0.0.1:6443"`, configure: func(c *Config) { c.Join, c.JoinToken = "10.0.0.1:6443", token }},
		{name: "cluster-init with etcd-servers", flag: "--cluster-init", also: "--etcd-servers", configure: func(c *Config) {
			c.ClusterInit, c.EtcdServers = true, []string{"https://10.0.0.9:2379"}
		}},
		{name: "join with etcd-servers", flag: "--cluster-init and --join", also: "--etcd-servers", configure: func(c *Config) {
			c.Join, c.JoinToken, c.EtcdServers = "https://10.0.0.1:6443", token, []string{"https://10.0.0.9:2379"}
		}},
		{name: "cluster-init without a name", flag: `--node-name ""`, configure: func(c *Config) { c.ClusterInit, c.Name = true, "" }},
		{name: "cluster-init with an upper-case name", flag: `--node-name "Server1"`, configure: func(c *Config) {
			c.ClusterInit, c.Name = true, "Server1"
		}},
		{name: "join with an underscore name", flag: `--node-name "s_1"`, configure: func(c *Config) {
			c.Join, c.JoinToken, c.Name = "https://10.0.0.1:6443", token, "s_1"
		}},
		{name: "name with an equals sign", flag: `--node-name "a=b"`, configure: func(c *Config) { c.ClusterInit, c.Name = true, "a=b" }},
		{name: "advertise a host name", flag: `--advertise-address "s1.example"`, configure: func(c *Config) {
			c.ClusterInit, c.AdvertiseAddress = true, "s1.example"
		}},
		{name: "advertise 0.0.0.0", flag: `--advertise-address "0.0.0.0"`, configure: func(c *Config) {
			c.ClusterInit, c.AdvertiseAddress = true, "0.0.0.0"
		}},
		{name: "advertise ::", flag: `--advertise-address "::"`, configure: func(c *Config) {
			c.ClusterInit, c.AdvertiseAddress = true, "::"
		}},
		{name: "peer port 0", flag: "--etcd-peer-port 0", configure: func(c *Config) { c.ClusterInit, c.EtcdPeerPort = true, 0 }},
		{name: "negative peer port", flag: "--etcd-peer-port -1", configure: func(c *Config) { c.ClusterInit, c.EtcdPeerPort = true, -1 }},
		{name: "peer port 65536", flag: "--etcd-peer-port 65536", configure: func(c *Config) { c.ClusterInit, c.EtcdPeerPort = true, 65536 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir, c.Name = "/var/lib/skiff/server", "s1"
			tc.configure(&c)
			err := c.Validate()
			switch {
			case tc.flag == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tc.flag == "":
			case err == nil:
				t.Fatalf("Validate: nil, want an error starting with %s", tc.flag)
			case !strings.HasPrefix(err.Error(), tc.flag) || !strings.Contains(err.Error(), tc.also):
				t.Fatalf("Validate: %q, want an error starting with %s and naming %q", err, tc.flag, tc.also)
			}
		})
	}
}

func TestAdvertiseIP(t *testing.T) {
	for _, tc := range []struct {
		listen, advertise string
		want              string // "" wants an error naming --advertise-address
	}{
		{listen: "10.0.0.5:6443", want: "10.0.0.5"},
		{listen: "[fd00::5]:6443", want: "fd00::5"},
		{listen: "0.0.0.0:6443", advertise: "10.0.0.6", want: "10.0.0.6"},
		{listen: "127.0.0.1:6443", advertise: "10.0.0.6", want: "10.0.0.6"},
		{listen: "0.0.0.0:6443"},
		{listen: "[::]:6443"},
		{listen: ":6443"},
		{listen: "localhost:6443"},
	} {
		c := Config{Listen: tc.listen, AdvertiseAddress: tc.advertise}
		got, err := c.advertiseIP()
		if tc.want == "" {
			if err == nil || !strings.HasPrefix(err.Error(), "--advertise-address") {
				t.Errorf("--listen %s --advertise-address %q: %q, %v; want an error naming --advertise-address", tc.listen, tc.advertise, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("--listen %s --advertise-address %q: %q, %v; want %s", tc.listen, tc.advertise, got, err, tc.want)
		}
	}
}
