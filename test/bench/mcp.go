package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpBench measures `skiff mcp` over stdio against a cluster of nodes
// simulated nodes and instances Instances bound to them: tool latency and
// answer sizes next to what kubectl get -o json of the same objects is.
func mcpBench(bin string, nodes, instances, calls int) ([]result, error) {
	dir, srv, api, err := tempServer(bin, "skiff-bench-mcp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer srv.stop()
	fleet, err := startFleet(bin, dir, srv, api, nodes, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer fleet.stop()
	names, err := api.nodeNames()
	if err != nil {
		return nil, err
	}
	if err := api.createBoundInstances(names, instances, 16); err != nil {
		return nil, err
	}
	ctx := context.Background()
	cmd := exec.Command(bin, "mcp", "--kubeconfig", srv.kubeconfig)
	cmd.Stderr = io.Discard
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "skiff-bench", Version: "v0"}, nil).Connect(ctx, &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, fmt.Errorf("skiff mcp: %w", err)
	}
	defer cs.Close()

	var out []result
	kubectlSize := map[string]int{}
	for _, path := range []string{"/apis/skiff.dev/v1alpha1/instances", "/apis/skiff.dev/v1alpha1/nodes", "/apis/skiff.dev/v1alpha1/workloads"} {
		n, err := api.getSize(path)
		if err != nil {
			return nil, err
		}
		kubectlSize[path] = n
	}
	for _, tc := range []struct {
		tool    string
		args    map[string]any
		kubectl int
		what    string
	}{
		{"get_cluster_status", map[string]any{}, kubectlSize["/apis/skiff.dev/v1alpha1/instances"] + kubectlSize["/apis/skiff.dev/v1alpha1/nodes"] + kubectlSize["/apis/skiff.dev/v1alpha1/workloads"], "kubectl get nodes,instances,workloads -A -o json"},
		{"list_instances", map[string]any{"all_namespaces": true}, kubectlSize["/apis/skiff.dev/v1alpha1/instances"], "kubectl get instances -A -o json"},
		{"list_instances", map[string]any{"all_namespaces": true, "limit": 500}, kubectlSize["/apis/skiff.dev/v1alpha1/instances"], "kubectl get instances -A -o json"},
	} {
		first, _, err := timeTool(ctx, cs, tc.tool, tc.args, 1)
		if err != nil {
			return nil, err
		}
		lat, size, err := timeTool(ctx, cs, tc.tool, tc.args, calls)
		if err != nil {
			return nil, err
		}
		label := fmt.Sprintf("mcp %s %v", tc.tool, tc.args)
		if len(tc.args) == 0 {
			label = "mcp " + tc.tool
		}
		out = append(out,
			result{fmt.Sprintf("%s p50 / p99 (%d nodes, %d Instances)", label, nodes, instances), ms(lat[len(lat)/2]) + " / " + ms(lat[len(lat)*99/100]), ""},
			result{label + ": first call", ms(first[0]), ""},
			result{label + ": answer", fmt.Sprintf("%d B, ~%d tokens", size, size/4), "<= 64 KiB cap"},
			result{"  next to " + tc.what, fmt.Sprintf("%d B, ~%d tokens", tc.kubectl, tc.kubectl/4), ""},
		)
	}
	return out, nil
}

// timeTool calls tool calls times, returning the sorted latencies and the
// size of the answer as sent.
func timeTool(ctx context.Context, cs *sdk.ClientSession, tool string, args map[string]any, calls int) ([]time.Duration, int, error) {
	lat := make([]time.Duration, 0, calls)
	size := 0
	for range calls {
		t0 := time.Now()
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", tool, err)
		}
		lat = append(lat, time.Since(t0))
		if res.IsError {
			return nil, 0, fmt.Errorf("%s: %v", tool, res.Content)
		}
		data, _ := json.Marshal(res)
		size = len(data)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat, size, nil
}

func (c *client) nodeNames() ([]string, error) {
	resp, err := c.hc.Get(c.host + "/apis/skiff.dev/v1alpha1/nodes")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	var names []string
	for _, it := range list.Items {
		names = append(names, it.Metadata.Name)
	}
	return names, nil
}

// getSize is the size of a GET's JSON answer, as kubectl -o json reads it.
func (c *client) getSize(path string) (int, error) {
	resp, err := c.hc.Get(c.host + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return int(n), err
}

// createBoundInstances creates n Instances spread over nodes, bound at
// creation, with workers writers.
func (c *client) createBoundInstances(nodes []string, n, workers int) error {
	url := c.host + "/apis/skiff.dev/v1alpha1/namespaces/default/instances"
	return inParallel(n, workers, func(i int) error {
		name := fmt.Sprintf("bench-%05d", i)
		body := fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Instance","metadata":{"name":%q,"labels":{"app":"bench-%d"}},"spec":{"nodeName":%q,"containers":[{"name":"main","image":"registry.local/app:1.0","resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}}`,
			name, i%100, nodes[i%len(nodes)])
		return c.post(url, name, []byte(body))
	})
}
