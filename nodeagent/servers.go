package nodeagent

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/klog/v2"

	"skiff.dev/skiff/identity"
	"skiff.dev/skiff/internal/failover"
)

// serversFile keeps, in the data dir, the API servers the agent last
// learned, one URL a line: an agent restarted while the servers of
// --server are down reaches the others.
const serversFile = "servers"

// knownServers are the servers of --server, then those kept in the data
// dir; the first is current.
func knownServers(cfg Config) (*failover.Servers, error) {
	kept, err := loadServers(cfg.DataDir)
	if err != nil {
		klog.ErrorS(err, "ignoring the API servers learned before", "node", cfg.NodeName)
	}
	servers, err := failover.New(append(failover.Split(cfg.Server), kept...))
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return servers, nil
}

// serversRefresher keeps servers current from the API while the agent
// runs, and the list in the data dir. The servers of --server stay
// listed: one may be a name the API does not list (the local agent's
// loopback address).
func serversRefresher(cfg Config, servers *failover.Servers, c *http.Client) *failover.Refresher {
	return &failover.Refresher{
		Servers: servers, Client: c, Keep: failover.Split(cfg.Server),
		Changed: func(list []string) {
			if err := saveServers(cfg.DataDir, list); err != nil {
				klog.ErrorS(err, "keep the API servers", "node", cfg.NodeName)
			}
			klog.InfoS("API servers", "node", cfg.NodeName, "servers", list)
		},
	}
}

// loadServers reads the servers kept in dataDir; none if there is no file.
func loadServers(dataDir string) ([]string, error) {
	path := filepath.Join(dataDir, serversFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	servers := strings.Fields(string(data))
	for _, s := range servers {
		if _, err := failover.Normalize(s); err != nil {
			return nil, fmt.Errorf("%s: API server %w", path, err)
		}
	}
	return servers, nil
}

// saveServers replaces the servers kept in dataDir.
func saveServers(dataDir string, servers []string) error {
	path := filepath.Join(dataDir, serversFile)
	if err := identity.WriteFileAtomic(path, []byte(strings.Join(servers, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
