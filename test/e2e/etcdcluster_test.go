package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// etcdPKI is a test CA and the certificates issued by it, as PEM files.
type etcdPKI struct {
	CA                    string // the CA certificate
	ServerCert, ServerKey string // the members' (127.0.0.1; server and peer auth)
	ClientCert, ClientKey string // skiff's and the test's client certificate
}

// newEtcdPKI writes a fresh CA, a member certificate for 127.0.0.1 and a
// client certificate into dir.
func newEtcdPKI(t *testing.T, dir string) etcdPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "EC PRIVATE KEY", der)
	}

	caKey := newKey()
	caTmpl := template("skiff e2e etcd CA")
	caTmpl.IsCA = true
	caTmpl.BasicConstraintsValid = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string, usage []x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := template(cn)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = usage
		tmpl.IPAddresses = ips
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := issue("etcd-member", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, []net.IP{net.IPv4(127, 0, 0, 1)})
	cliDER, cliKey := issue("skiff-apiserver", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	return etcdPKI{
		CA:         write("ca.crt", "CERTIFICATE", caDER),
		ServerCert: write("member.crt", "CERTIFICATE", srvDER),
		ServerKey:  writeKey("member.key", srvKey),
		ClientCert: write("client.crt", "CERTIFICATE", cliDER),
		ClientKey:  writeKey("client.key", cliKey),
	}
}

// etcdMember is one member of the test's etcd cluster, in this process.
type etcdMember struct {
	name      string
	clientURL string // https://127.0.0.1:PORT
	logPath   string
	e         *embed.Etcd

	closed    atomic.Bool
	closeOnce sync.Once
}

// close stops the member (etcd's graceful stop: its clients are cut, a
// leader hands over its leadership); it is safe to call more than once.
// The member counts as closed from the start of the call.
func (m *etcdMember) close() {
	m.closed.Store(true)
	m.closeOnce.Do(m.e.Close)
}

func (m *etcdMember) isClosed() bool { return m.closed.Load() }

// freePorts returns n distinct TCP ports on 127.0.0.1 free at the time of
// the call (held together, so they differ).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startEtcdCluster starts a three-member etcd cluster on 127.0.0.1 over
// TCP, clients and peers on mutual TLS, each member in a directory of its
// own, and waits until every member is ready and they agree on a leader.
// The members are closed at cleanup. A port taken between freePorts and
// the listen (another process) makes it try again with new ports.
func startEtcdCluster(t *testing.T, pki etcdPKI) []*etcdMember {
	t.Helper()
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		members, err := tryStartEtcdCluster(t, pki)
		if err == nil {
			return members
		}
		lastErr = err
		t.Logf("etcd cluster, attempt %d: %v", attempt, err)
	}
	t.Fatalf("etcd cluster did not start: %v", lastErr)
	return nil
}

func tryStartEtcdCluster(t *testing.T, pki etcdPKI) ([]*etcdMember, error) {
	ports := freePorts(t, 6)
	tls := transport.TLSInfo{
		CertFile:       pki.ServerCert,
		KeyFile:        pki.ServerKey,
		TrustedCAFile:  pki.CA,
		ClientCertAuth: true,
	}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=https://127.0.0.1:%d", i+1, ports[2*i+1]))
	}
	token := fmt.Sprintf("skiff-e2e-%d", time.Now().UnixNano())
	var members []*etcdMember
	closeAll := func() {
		for _, m := range members {
			m.close()
		}
	}
	for i := range 3 {
		client := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		peer := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		dir := t.TempDir()
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i+1)
		cfg.Dir = filepath.Join(dir, "data")
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = token
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.ClientTLSInfo, cfg.PeerTLSInfo = tls, tls
		cfg.LogLevel = "info"
		logPath := filepath.Join(dir, "etcd.log")
		cfg.LogOutputs = []string{logPath}
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("start member %s: %w", cfg.Name, err)
		}
		members = append(members, &etcdMember{name: cfg.Name, clientURL: client.String(), logPath: logPath, e: e})
	}
	deadline := time.After(30 * time.Second)
	for _, m := range members {
		select {
		case <-m.e.Server.ReadyNotify():
		case err := <-m.e.Err():
			closeAll()
			return nil, fmt.Errorf("member %s: %w", m.name, err)
		case <-deadline:
			closeAll()
			return nil, fmt.Errorf("member %s not ready within 30s", m.name)
		}
	}
	t.Cleanup(func() {
		closeAll()
		if t.Failed() {
			for _, m := range members {
				dumpTail(t, m.logPath, 30)
			}
		}
	})
	// Every member knows the same leader.
	waitFor(t, 30*time.Second, func() (bool, error) {
		lead := members[0].e.Server.Leader()
		for _, m := range members {
			if l := m.e.Server.Leader(); l == 0 || l != lead {
				return false, nil
			}
		}
		return true, nil
	})
	return members, nil
}

// leader is the member that leads, among those not closed; nil when the
// open members do not agree on one of them.
func leader(members []*etcdMember) *etcdMember {
	var lead *etcdMember
	for _, m := range members {
		if m.isClosed() {
			continue
		}
		if m.e.Server.Leader() == m.e.Server.MemberID() {
			if lead != nil {
				return nil
			}
			lead = m
		}
	}
	for _, m := range members {
		if !m.isClosed() && lead != nil && m.e.Server.Leader() != lead.e.Server.MemberID() {
			return nil
		}
	}
	return lead
}

func dumpTail(t *testing.T, path string, lines int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%s: %v", path, err)
		return
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	t.Logf("last %d lines of %s:\n%s", len(all), path, strings.Join(all, "\n"))
}

// etcdClient is a client of the members' client URLs with the test's
// client certificate.
func etcdClient(t *testing.T, pki etcdPKI, endpoints []string) *clientv3.Client {
	t.Helper()
	tlsCfg, err := transport.TLSInfo{CertFile: pki.ClientCert, KeyFile: pki.ClientKey, TrustedCAFile: pki.CA}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

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
