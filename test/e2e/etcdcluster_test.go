package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// configMapYAML is a ConfigMap name in namespace ns with data k=v.
func configMapYAML(name, ns, k, v string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n  %s: %q\n", name, ns, k, v)
}

// TestExternalEtcdCluster runs `skiff server --etcd-servers` against a
// real three-member etcd cluster (embedded in the test process, over TCP
// and mutual TLS): objects of several kinds are stored under
// --etcd-prefix, Secrets encrypted; the leader member is stopped and
// writes and reads keep working, with every write acknowledged before and
// during the stop still there; a server restarted against the two
// remaining members finds everything.
func TestExternalEtcdCluster(t *testing.T) {
	requireE2E(t)
	const (
		prefix     = "/skiff-e2e"
		ns         = "ext-etcd"
		secretText = "plaintext-must-not-reach-etcd"
		failover   = 30 * time.Second
	)
	pki := newEtcdPKI(t, t.TempDir())
	start := time.Now()
	members := startEtcdCluster(t, pki)
	var urls []string
	for _, m := range members {
		urls = append(urls, m.clientURL)
	}
	t.Logf("etcd cluster %v ready with leader %s in %v", urls, leader(members).name, time.Since(start).Round(time.Millisecond))

	dataDir := t.TempDir()
	serverArgs := func(endpoints []string) []string {
		return []string{"--disable-agent",
			"--etcd-servers", strings.Join(endpoints, ","),
			"--etcd-cafile", pki.CA, "--etcd-certfile", pki.ClientCert, "--etcd-keyfile", pki.ClientKey,
			"--etcd-prefix", prefix}
	}
	s := startServer(t, dataDir, "127.0.0.1:0", serverArgs(urls)...)

	s.mustKubectl(t, "create", "namespace", ns)
	s.mustKubectl(t, "apply", "-f", writeFile(t, "w.yaml", workloadYAML("web", ns, "web", "replicas: 2")))
	s.mustKubectl(t, "apply", "-f", writeFile(t, "cm.yaml", configMapYAML("settings", ns, "mode", "clustered")))
	s.mustKubectl(t, "-n", ns, "create", "secret", "generic", "creds", "--from-literal=password="+secretText)
	wlUID := s.jsonpath(t, "{.metadata.uid}", "-n", ns, "wl", "web")

	// What is in etcd: every object under the prefix, the Secret sealed.
	cli := etcdClient(t, pki, urls)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secretKey := prefix + "/secrets/" + ns + "/creds"
	resp, err := cli.Get(ctx, secretKey)
	if err != nil {
		t.Fatalf("etcd get %s: %v", secretKey, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("etcd has %d keys %s, want 1", len(resp.Kvs), secretKey)
	}
	raw := resp.Kvs[0].Value
	if !bytes.HasPrefix(raw, []byte("k8s:enc:")) {
		t.Errorf("Secret stored in etcd without encryption: %q", raw[:min(len(raw), 80)])
	}
	for _, leak := range []string{secretText, base64.StdEncoding.EncodeToString([]byte(secretText))} {
		if bytes.Contains(raw, []byte(leak)) {
			t.Errorf("etcd's value of %s holds the Secret's value (%q)", secretKey, leak)
		}
	}
	t.Logf("%s in etcd: %q...", secretKey, raw[:min(len(raw), 24)])
	// Every Secret, the server's own too (its join token), is sealed.
	secrets, err := cli.Get(ctx, prefix+"/secrets/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range secrets.Kvs {
		if !bytes.HasPrefix(kv.Value, []byte("k8s:enc:")) {
			t.Errorf("Secret %s stored in etcd without encryption", kv.Key)
		}
	}
	if len(secrets.Kvs) < 2 {
		t.Errorf("etcd holds %d Secrets, want the server's join token and creds", len(secrets.Kvs))
	}
	all, err := cli.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys, outside []string
	for _, kv := range all.Kvs {
		k := string(kv.Key)
		keys = append(keys, k)
		// compact_rev_key is the apiserver library's compaction marker,
		// at the root of the keyspace in kube-apiserver too.
		if !strings.HasPrefix(k, prefix+"/") && k != "compact_rev_key" {
			outside = append(outside, k)
		}
	}
	if len(outside) > 0 {
		t.Errorf("keys outside --etcd-prefix %s: %v", prefix, outside)
	}
	for _, want := range []string{prefix + "/namespaces/" + ns, prefix + "/configmaps/" + ns + "/settings"} {
		if !slices.Contains(keys, want) {
			t.Errorf("etcd has no key %s", want)
		}
	}
	if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, prefix+"/") && strings.HasSuffix(k, "/"+ns+"/web") }) {
		t.Errorf("etcd has no key of the Workload %s/web under %s", ns, prefix)
	}
	t.Logf("etcd holds %d keys, %d of them Secrets", len(keys), len(secrets.Kvs))

	// A writer keeps creating ConfigMaps through the leader's stop; each
	// one acknowledged must survive it.
	type write struct {
		name string
		end  time.Time
		err  string // "" when acknowledged
	}
	var (
		writesMu sync.Mutex
		writes   []write
	)
	acked := func() (n int) {
		writesMu.Lock()
		defer writesMu.Unlock()
		for _, w := range writes {
			if w.err == "" {
				n++
			}
		}
		return n
	}
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stopWriter:
				return
			default:
			}
			w := write{name: fmt.Sprintf("bg-%03d", i)}
			r := s.runKubectl("--request-timeout=10s", "-n", ns, "create", "configmap", w.name, "--from-literal=i="+w.name)
			w.end = time.Now()
			if r.Err != nil {
				w.err = strings.TrimSpace(r.Combined())
			}
			writesMu.Lock()
			writes = append(writes, w)
			writesMu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-writerDone:
		default:
			close(stopWriter)
			<-writerDone
		}
	}()
	waitFor(t, 30*time.Second, func() (bool, error) { return acked() >= 3, nil })
	s.mustKubectl(t, "apply", "-f", writeFile(t, "before.yaml", configMapYAML("before-stop", ns, "acked", "yes")))

	old := leader(members)
	if old == nil {
		t.Fatal("the etcd members agree on no leader")
	}
	ackedBefore := acked()
	stopAt := time.Now()
	closeDone := make(chan time.Duration, 1)
	old.closed.Store(true) // leader() looks at the two others from now on
	go func() {
		old.close()
		closeDone <- time.Since(stopAt)
	}()
	t.Logf("stopping the leader %s (%s); %d writes acknowledged before", old.name, old.clientURL, ackedBefore)

	// The two members left elect a leader among them.
	var lead *etcdMember
	waitFor(t, failover, func() (bool, error) { lead = leader(members); return lead != nil && lead != old, nil })
	elected := time.Since(stopAt)
	var firstWrite time.Duration
	attempts := 0
	waitFor(t, failover, func() (bool, error) {
		attempts++
		r := s.runKubectl("--request-timeout=5s", "apply", "-f", writeFile(t, "after.yaml", configMapYAML("after-stop", ns, "attempt", fmt.Sprint(attempts))))
		if r.Err != nil {
			t.Logf("write %d after the new leader: %s", attempts, strings.TrimSpace(r.Combined()))
			return false, nil
		}
		firstWrite = time.Since(stopAt)
		return true, nil
	})
	var closed time.Duration
	select {
	case closed = <-closeDone:
	case <-time.After(failover):
		t.Fatalf("the leader %s did not stop within %v", old.name, failover)
	}
	t.Logf("leader stop: %s leads from %v, first write after that acknowledged at %v (%d attempts), the old leader stopped in %v",
		lead.name, elected.Round(time.Millisecond), firstWrite.Round(time.Millisecond), attempts, closed.Round(time.Millisecond))

	// Reads of what was there, through the two members left.
	waitFor(t, failover, func() (bool, error) {
		r := s.runKubectl("--request-timeout=5s", "-n", ns, "get", "configmap", "before-stop", "-o", "jsonpath={.data.acked}")
		return r.Err == nil && r.Stdout == "yes", nil
	})
	// The writer lands a few more once the old leader is gone, then stops.
	target := acked() + 3
	waitFor(t, failover, func() (bool, error) { return acked() >= target, nil })
	close(stopWriter)
	<-writerDone

	// How long writes were unavailable: the longest wait, from the stop
	// on, for the next acknowledgement.
	writesMu.Lock()
	var wantBG []string
	var failures []string
	last, longest := stopAt, time.Duration(0)
	for _, w := range writes {
		if w.err != "" {
			failures = append(failures, fmt.Sprintf("%s at %v: %s", w.name, w.end.Sub(stopAt).Round(time.Millisecond), w.err))
			continue
		}
		wantBG = append(wantBG, w.name)
		if w.end.After(stopAt) {
			longest = max(longest, w.end.Sub(last))
			last = w.end
		}
	}
	t.Logf("background writer: %d creates, %d acknowledged; longest wait for an acknowledgement from the stop on: %v",
		len(writes), len(wantBG), longest.Round(time.Millisecond))
	for _, f := range failures {
		t.Logf("background write failed: %s", f)
	}
	writesMu.Unlock()
	if longest > failover {
		t.Errorf("writes unavailable for %v after the leader stop, want under %v", longest, failover)
	}

	check := func(s *server, when string) {
		t.Helper()
		if got := s.jsonpath(t, "{.metadata.uid}", "-n", ns, "wl", "web"); got != wlUID {
			t.Errorf("%s: Workload uid %q, want %q", when, got, wlUID)
		}
		if got := s.jsonpath(t, "{.data.mode}", "-n", ns, "configmap", "settings"); got != "clustered" {
			t.Errorf("%s: ConfigMap settings mode=%q", when, got)
		}
		if got := s.jsonpath(t, "{.data.acked}", "-n", ns, "configmap", "before-stop"); got != "yes" {
			t.Errorf("%s: ConfigMap before-stop acked=%q", when, got)
		}
		if got := s.jsonpath(t, "{.metadata.name}", "-n", ns, "configmap", "after-stop"); got != "after-stop" {
			t.Errorf("%s: ConfigMap after-stop: %q", when, got)
		}
		enc := s.jsonpath(t, "{.data.password}", "-n", ns, "secret", "creds")
		if dec, err := base64.StdEncoding.DecodeString(enc); err != nil || string(dec) != secretText {
			t.Errorf("%s: Secret creds password %q (%v), want %q", when, dec, err, secretText)
		}
		names := strings.Fields(s.jsonpath(t, "{range .items[*]}{.metadata.name}{\"\\n\"}{end}", "-n", ns, "configmaps"))
		var missing []string
		for _, n := range wantBG {
			if !slices.Contains(names, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: %d acknowledged ConfigMaps are gone: %v", when, len(missing), missing)
		}
	}
	check(s, "after the leader stop")

	// The server's own health through the failover.
	if out, err := s.kubectl("get", "--raw", "/readyz"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("/readyz after the leader stop: %q %v", out, err)
	}

	// A new server over the two members left finds everything.
	if err := s.stop(); err != nil {
		t.Errorf("skiff server exit: %v", err)
	}
	var left []string
	for _, m := range members {
		if !m.isClosed() {
			left = append(left, m.clientURL)
		}
	}
	restart := time.Now()
	s2 := startServer(t, dataDir, "127.0.0.1:0", serverArgs(left)...)
	t.Logf("skiff server restarted against %v, ready in %v", left, time.Since(restart).Round(time.Millisecond))
	check(s2, "after the restart on two members")
	s2.mustKubectl(t, "apply", "-f", writeFile(t, "restarted.yaml", configMapYAML("restarted", ns, "k", "v")))
	after, err := cli.Get(ctx, prefix+"/configmaps/"+ns+"/restarted")
	if err != nil || len(after.Kvs) != 1 {
		t.Errorf("etcd after a write of the restarted server: %v, %v", after, err)
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
