package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// serveCluster makes one request of c's handler.
func serveCluster(t *testing.T, c *cluster, method, path string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case nil:
	case string:
		data = []byte(b)
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(data)))
	return rec
}

// wantStatus checks that rec is a refusal with code, as a metav1.Status
// whose message holds msg, and returns the message.
func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, code int, reason metav1.StatusReason, msg string) string {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%d %s: not a Status: %v", rec.Code, rec.Body, err)
	}
	if rec.Code != code || st.Code != int32(code) || st.Reason != reason || st.Kind != "Status" || !strings.Contains(st.Message, msg) {
		t.Fatalf("%d %s, want %d %s with a message holding %q", rec.Code, rec.Body, code, reason, msg)
	}
	return st.Message
}

// TestClusterHandlerWithoutCluster: the endpoints route, refuse bad joins
// before touching etcd, and say that a server's own etcd has no cluster.
func TestClusterHandlerWithoutCluster(t *testing.T) {
	own := &cluster{}
	own.etcd.Store(&embeddedEtcd{}) // a server's own etcd: no member
	for name, c := range map[string]*cluster{"etcd not started": {}, "own etcd": own} {
		t.Run(name, func(t *testing.T) {
			wantStatus(t, serveCluster(t, c, http.MethodGet, ClusterMembersPath, nil), http.StatusConflict, metav1.StatusReasonConflict, "--cluster-init")
			wantStatus(t, serveCluster(t, c, http.MethodDelete, ClusterMembersPath+"/s2", nil), http.StatusConflict, metav1.StatusReasonConflict, "--cluster-init")
			wantStatus(t, serveCluster(t, c, http.MethodPost, ClusterJoinPath, JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380"}),
				http.StatusConflict, metav1.StatusReasonConflict, "--cluster-init")

			wantStatus(t, serveCluster(t, c, http.MethodPost, ClusterJoinPath, "{"), http.StatusBadRequest, metav1.StatusReasonBadRequest, "join request")
			wantStatus(t, serveCluster(t, c, http.MethodPost, ClusterJoinPath, `{"name": "s2", "peerURL": "`+strings.Repeat("x", 70<<10)+`"}`),
				http.StatusBadRequest, metav1.StatusReasonBadRequest, "join request")
			wantStatus(t, serveCluster(t, c, http.MethodPost, ClusterJoinPath, JoinRequest{Name: "S2", PeerURL: "https://10.0.0.2:2380"}),
				http.StatusBadRequest, metav1.StatusReasonBadRequest, `name "S2"`)
			wantStatus(t, serveCluster(t, c, http.MethodPost, ClusterJoinPath, JoinRequest{Name: "s2", PeerURL: "http://10.0.0.2:2380"}),
				http.StatusBadRequest, metav1.StatusReasonBadRequest, "peerURL")

			for _, r := range []struct{ method, path string }{
				{http.MethodGet, ClusterPath},
				{http.MethodGet, ClusterJoinPath},
				{http.MethodPost, ClusterMembersPath},
				{http.MethodDelete, ClusterMembersPath},
				{http.MethodPut, ClusterMembersPath + "/s2"},
				{http.MethodGet, ClusterPath + "/other"},
			} {
				wantStatus(t, serveCluster(t, c, r.method, r.path, nil), http.StatusNotFound, metav1.StatusReasonNotFound, "DELETE "+ClusterMembersPath+"/NAME")
			}
		})
	}
}

// startMember starts a clustered embedded etcd for m in dir, the peer CA
// already there; it is closed when the test ends.
func startMember(t *testing.T, dir string, m *etcdMember) *embeddedEtcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := startEmbeddedEtcd(ctx, dir, etcdOptions{member: m})
	if err != nil {
		t.Fatalf("etcd member %s: %v", m.Name, err)
	}
	t.Cleanup(e.Close)
	return e
}

// firstMember starts the first server's etcd in data/etcd, as
// --cluster-init does: the cluster's peer CA, a cluster of one on
// 127.0.0.1. Its cluster serves the files of data, and the encryption
// config.
func firstMember(t *testing.T, data, name string) (*cluster, *embeddedEtcd, *clientv3.Client) {
	t.Helper()
	dir := dataDir{path: data}
	if err := ensurePeerCA(dir.file("etcd")); err != nil {
		t.Fatal(err)
	}
	peer := peerURL("127.0.0.1", freePort(t))
	e := startMember(t, dir.file("etcd"), &etcdMember{Name: name, PeerURL: peer, InitialCluster: name + "=" + peer})
	enc := dir.file(EncryptionConfigFile)
	if err := os.WriteFile(enc, []byte("kind: EncryptionConfiguration\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{dir: dir, encryptionConfig: enc}
	c.etcd.Store(e)
	cli := v3client.New(e.etcd.Server)
	t.Cleanup(func() { cli.Close() })
	return c, e, cli
}

func memberCount(t *testing.T, cli *clientv3.Client) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Members)
}

// wantInitialCluster checks an initial cluster against its name=URL
// pairs, in any order.
func wantInitialCluster(t *testing.T, got string, want ...string) {
	t.Helper()
	pairs := strings.Split(got, ",")
	slices.Sort(pairs)
	slices.Sort(want)
	if !slices.Equal(pairs, want) {
		t.Fatalf("initial cluster %q, want %q", got, strings.Join(want, ","))
	}
}

// TestAddLearnerConflicts: joins that would take a member's name or peer
// URL are refused; a learner added to a cluster of one (its etcd never
// started) is found by a retried join, not added twice, keeps other
// servers from joining, and is removed by its id.
func TestAddLearnerConflicts(t *testing.T) {
	c, a, cli := firstMember(t, t.TempDir(), "s1")
	urlA := a.member.PeerURL
	urlB := peerURL("127.0.0.1", freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wantRefused := func(req JoinRequest, want string) {
		t.Helper()
		_, code, err := addLearner(ctx, cli, req)
		if code != http.StatusConflict || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("join %+v: %d %v, want 409 %s", req, code, err, want)
		}
	}
	wantRefused(JoinRequest{Name: "s1", PeerURL: urlB}, `named "s1" is already a member`)
	wantRefused(JoinRequest{Name: "s3", PeerURL: urlA}, `is member "s1"'s`)
	wantRefused(JoinRequest{Name: "s1", PeerURL: urlA}, `server "s1" is already a voting member`)
	if n := memberCount(t, cli); n != 1 {
		t.Fatalf("after refused joins: %d members, want 1", n)
	}

	initial, _, err := addLearner(ctx, cli, JoinRequest{Name: "s2", PeerURL: urlB})
	if err != nil {
		t.Fatal(err)
	}
	wantInitialCluster(t, initial, "s1="+urlA, "s2="+urlB)
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list.Members, func(m *etcdserverpb.Member) bool { return slices.Equal(m.PeerURLs, []string{urlB}) })
	if i < 0 || !list.Members[i].IsLearner || list.Members[i].Name != "" {
		t.Fatalf("members %v, want %s a learner not yet started", list.Members, urlB)
	}
	learnerID := strconv.FormatUint(list.Members[i].ID, 16)

	initial, _, err = addLearner(ctx, cli, JoinRequest{Name: "s2", PeerURL: urlB})
	if err != nil {
		t.Fatalf("a retried join: %v", err)
	}
	wantInitialCluster(t, initial, "s1="+urlA, "s2="+urlB)
	if n := memberCount(t, cli); n != 2 {
		t.Fatalf("after a retried join: %d members, want 2", n)
	}

	// One learner at a time: another server, or this one elsewhere, waits
	// for it, and is told how to remove it.
	wantRefused(JoinRequest{Name: "s3", PeerURL: peerURL("127.0.0.1", freePort(t))}, "skiff server remove "+learnerID)
	wantRefused(JoinRequest{Name: "s2", PeerURL: peerURL("127.0.0.1", freePort(t))}, "skiff server remove "+learnerID)
	if n := memberCount(t, cli); n != 2 {
		t.Fatalf("after refused joins: %d members, want 2", n)
	}

	// It has no name to be removed by; its id does.
	wantStatus(t, serveCluster(t, c, http.MethodDelete, ClusterMembersPath+"/s2", nil), http.StatusNotFound, metav1.StatusReasonNotFound, `"s2"`)
	if rec := serveCluster(t, c, http.MethodDelete, ClusterMembersPath+"/"+learnerID, nil); rec.Code != http.StatusNoContent {
		t.Fatalf("remove %s: %d %s", learnerID, rec.Code, rec.Body)
	}
	if n := memberCount(t, cli); n != 1 {
		t.Fatalf("after removing the learner: %d members, want 1", n)
	}
	urlC := peerURL("127.0.0.1", freePort(t))
	initial, _, err = addLearner(ctx, cli, JoinRequest{Name: "s3", PeerURL: urlC})
	if err != nil {
		t.Fatalf("a join once the learner was removed: %v", err)
	}
	wantInitialCluster(t, initial, "s1="+urlA, "s3="+urlC)
}

// listMembers GETs ClusterMembersPath.
func listMembers(t *testing.T, c *cluster) []Member {
	t.Helper()
	rec := serveCluster(t, c, http.MethodGet, ClusterMembersPath, nil)
	var members []Member
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &members) != nil {
		t.Fatalf("GET %s: %d %s", ClusterMembersPath, rec.Code, rec.Body)
	}
	return members
}

func memberByPeer(members []Member, peer string) (Member, bool) {
	i := slices.IndexFunc(members, func(m Member) bool { return m.PeerURL == peer })
	if i < 0 {
		return Member{}, false
	}
	return members[i], true
}

// TestClusterOfTwo runs two clustered embedded etcds in this process: the
// second joins through the first's handler with the files it hands out,
// starts as a learner, is promoted, and is removed.
func TestClusterOfTwo(t *testing.T) {
	root := t.TempDir()
	c, a, cli := firstMember(t, filepath.Join(root, "a"), "s1")
	urlA, urlB := a.member.PeerURL, peerURL("127.0.0.1", freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rec := serveCluster(t, c, http.MethodPost, ClusterJoinPath, JoinRequest{Name: "s2", PeerURL: urlB})
	var resp JoinResponse
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
		t.Fatalf("join: %d %s", rec.Code, rec.Body)
	}
	wantInitialCluster(t, resp.InitialCluster, "s1="+urlA, "s2="+urlB)
	for _, f := range []string{"etcd/" + peerCACertFile, "etcd/" + peerCAKeyFile} {
		if !bytes.Equal(resp.Files[f], mustRead(t, c.dir.file(f))) {
			t.Errorf("join response: %s is not the cluster's", f)
		}
	}
	if _, ok := resp.Files["etcd/"+memberFile]; ok {
		t.Error("join response: the first server's member file was handed out")
	}
	if string(resp.EncryptionConfig) != "kind: EncryptionConfiguration\n" {
		t.Errorf("join response: encryption config %q", resp.EncryptionConfig)
	}
	members := listMembers(t, c)
	if s2, ok := memberByPeer(members, urlB); len(members) != 2 || !ok || !s2.Learner || s2.Started || s2.Leader {
		t.Fatalf("members after the join: %+v, want s2 a learner not yet started", members)
	}
	if s1, _ := memberByPeer(members, urlA); s1.Name != "s1" || !s1.Leader || s1.Learner || !s1.Started ||
		s1.ID != strconv.FormatUint(uint64(a.etcd.Server.MemberID()), 16) {
		t.Fatalf("members after the join: %+v, want s1 the started leader", members)
	}
	// A retried join: the same learner.
	rec = serveCluster(t, c, http.MethodPost, ClusterJoinPath, JoinRequest{Name: "s2", PeerURL: urlB})
	if rec.Code != http.StatusOK || memberCount(t, cli) != 2 {
		t.Fatalf("a retried join: %d %s, %d members; want 200 and 2", rec.Code, rec.Body, memberCount(t, cli))
	}

	// The second server starts with what it was handed.
	dataB := dataDir{path: filepath.Join(root, "b")}
	if err := writeJoinFiles(Config{DataDir: dataB.path}, dataB, &resp); err != nil {
		t.Fatal(err)
	}
	b := startMember(t, dataB.file("etcd"), &etcdMember{Name: "s2", PeerURL: urlB, InitialCluster: resp.InitialCluster, Existing: true})
	if !b.etcd.Server.IsLearner() {
		t.Fatal("the joining server's etcd votes before it was promoted")
	}
	eventually(t, 30*time.Second, "s2 known by its name", func() bool {
		s2, _ := memberByPeer(listMembers(t, c), urlB)
		return s2.Name == "s2" && s2.Started
	})
	// Now its name is known, it conflicts too.
	for _, tc := range []struct {
		req  JoinRequest
		want string
	}{
		{JoinRequest{Name: "s3", PeerURL: urlB}, `is member "s2"'s`},
		{JoinRequest{Name: "s2", PeerURL: peerURL("127.0.0.1", 1)}, `named "s2" is already a member`},
	} {
		rec := serveCluster(t, c, http.MethodPost, ClusterJoinPath, tc.req)
		wantStatus(t, rec, http.StatusConflict, metav1.StatusReasonConflict, tc.want)
	}

	// The first server's leader promotes it once it caught up.
	promoting, stopPromoting := context.WithCancel(ctx)
	promoted := make(chan struct{})
	go func() {
		defer close(promoted)
		c.promoteLearners(promoting)
	}()
	waitCtx, cancelWait := context.WithTimeout(ctx, time.Minute)
	err := waitPromoted(waitCtx, b, dataB.file("etcd"))
	cancelWait()
	stopPromoting()
	<-promoted
	if err != nil {
		t.Fatal(err)
	}
	members = listMembers(t, c)
	leaders := 0
	for _, m := range members {
		if m.Learner || !m.Started {
			t.Errorf("member %+v: want a started voter", m)
		}
		if m.Leader {
			leaders++
			if m.ID != strconv.FormatUint(uint64(a.etcd.Server.Leader()), 16) {
				t.Errorf("member %+v is listed as the leader; etcd's is %x", m, a.etcd.Server.Leader())
			}
		}
	}
	if len(members) != 2 || leaders != 1 {
		t.Fatalf("members after the promotion: %+v, want two voters, one the leader", members)
	}
	wantStatus(t, serveCluster(t, c, http.MethodPost, ClusterJoinPath, JoinRequest{Name: "s2", PeerURL: urlB}),
		http.StatusConflict, metav1.StatusReasonConflict, `server "s2" is already a voting member`)

	// The voters' data is one: a write through the first reads on the second.
	if _, err := cli.Put(ctx, "/test/key", "value"); err != nil {
		t.Fatal(err)
	}
	cliB := v3client.New(b.etcd.Server)
	defer cliB.Close()
	if got, err := cliB.Get(ctx, "/test/key"); err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "value" {
		t.Fatalf("read through s2: %v, %v", got, err)
	}

	// Removed (etcd may first refuse while s2's connection is recent), its
	// etcd stops on its own.
	wantStatus(t, serveCluster(t, c, http.MethodDelete, ClusterMembersPath+"/s9", nil), http.StatusNotFound, metav1.StatusReasonNotFound, `"s9"`)
	if rec := serveCluster(t, c, http.MethodDelete, ClusterMembersPath+"/s2", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("remove s2: %d %s", rec.Code, rec.Body)
	}
	select {
	case <-b.Stopped():
	case <-time.After(30 * time.Second):
		t.Fatal("the removed member's etcd did not stop")
	}
	if members := listMembers(t, c); len(members) != 1 || members[0].Name != "s1" || !members[0].Leader {
		t.Fatalf("members after the removal: %+v, want s1 alone, leading", members)
	}
	wantStatus(t, serveCluster(t, c, http.MethodDelete, ClusterMembersPath+"/s1", nil), http.StatusConflict, metav1.StatusReasonConflict, "only member")
	wantStatus(t, serveCluster(t, c, http.MethodDelete, ClusterMembersPath+"/", nil), http.StatusBadRequest, metav1.StatusReasonBadRequest, "which server")
}
