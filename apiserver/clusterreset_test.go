package apiserver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

func TestResetMembershipRefusesAServersOwnEtcd(t *testing.T) {
	data := t.TempDir()
	// A server's own etcd has data and no member file.
	if err := os.MkdirAll(filepath.Join(data, "etcd", "data", "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := ResetMembership(Config{DataDir: data})
	if err == nil || !strings.HasPrefix(err.Error(), "--cluster-reset: ") || !strings.Contains(err.Error(), "--restore") {
		t.Fatalf("ResetMembership of a server's own etcd: %v, want a refusal naming --cluster-reset and --restore", err)
	}
}

func TestResetMembershipRefusesAMemberWithoutData(t *testing.T) {
	data := t.TempDir()
	m := etcdMember{Name: "s1", PeerURL: "https://127.0.0.1:2380", InitialCluster: "s1=https://127.0.0.1:2380"}
	if err := m.save(filepath.Join(data, "etcd")); err != nil {
		t.Fatal(err)
	}
	err := ResetMembership(Config{DataDir: data})
	if err == nil || !strings.HasPrefix(err.Error(), "--cluster-reset: ") || !strings.Contains(err.Error(), "no etcd data") {
		t.Fatalf("ResetMembership without etcd data: %v, want a refusal", err)
	}
}

func TestResetMembershipRefusesABrokenMemberFile(t *testing.T) {
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "etcd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "etcd", memberFile), []byte(`{"name": "s1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ResetMembership(Config{DataDir: data}); err == nil || !strings.Contains(err.Error(), memberFile) {
		t.Fatalf("ResetMembership with a member file without peerURL: %v, want an error naming it", err)
	}
}

// TestResetMembership: a member of a cluster of two (the other never
// came) becomes the only member of its cluster, keeping its data.
func TestResetMembership(t *testing.T) {
	data := t.TempDir()
	_, a, cli := firstMember(t, data, "s1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.Put(ctx, "/test/kept", "yes"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := addLearner(ctx, cli, JoinRequest{Name: "s2", PeerURL: peerURL("127.0.0.1", freePort(t))}); err != nil {
		t.Fatal(err)
	}
	// Found a cluster of two, as a member that joined would have.
	m := *a.member
	m.InitialCluster, m.Existing = m.InitialCluster+",s2=https://127.0.0.1:1", true
	if err := m.save(filepath.Join(data, "etcd")); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	a.Close()

	if err := ResetMembership(Config{DataDir: data}); err != nil {
		t.Fatal(err)
	}
	reset, err := loadEtcdMember(filepath.Join(data, "etcd"))
	want := etcdMember{Name: "s1", PeerURL: m.PeerURL, InitialCluster: "s1=" + m.PeerURL}
	if err != nil || *reset != want {
		t.Fatalf("member file after the reset: %+v, %v; want %+v", reset, err, want)
	}
	e := startMember(t, filepath.Join(data, "etcd"), reset)
	cli = v3client.New(e.etcd.Server)
	defer cli.Close()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Members) != 1 || list.Members[0].Name != "s1" || list.Members[0].IsLearner {
		t.Fatalf("members after the reset: %v, want s1 alone", list.Members)
	}
	if got, err := cli.Get(ctx, "/test/kept"); err != nil || len(got.Kvs) != 1 {
		t.Fatalf("data after the reset: %v, %v; want it kept", got, err)
	}
}

func TestRestoreMember(t *testing.T) {
	data := t.TempDir()
	if name, peer, err := RestoreMember(data); name != "" || peer != "" || err != nil {
		t.Fatalf("a server's own etcd: %q %q %v, want none", name, peer, err)
	}
	m := etcdMember{Name: "s2", PeerURL: "https://10.0.0.2:2380", InitialCluster: "s1=https://10.0.0.1:2380,s2=https://10.0.0.2:2380", Existing: true}
	if err := m.save(filepath.Join(data, "etcd")); err != nil {
		t.Fatal(err)
	}
	if name, peer, err := RestoreMember(data); name != "s2" || peer != m.PeerURL || err != nil {
		t.Fatalf("a member: %q %q %v, want s2 %s", name, peer, err, m.PeerURL)
	}
	if err := os.WriteFile(filepath.Join(data, "etcd", memberFile), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := RestoreMember(data); err == nil {
		t.Fatal("a broken member file was taken")
	}
}

// TestRestoredMembership: the member file and peer certificates of the
// etcd directory a restore replaced go into the new one, which founds a
// cluster of one.
func TestRestoredMembership(t *testing.T) {
	data := t.TempDir()
	previous := filepath.Join(data, "etcd.previous")
	if err := ensurePeerCA(previous); err != nil {
		t.Fatal(err)
	}
	if err := ensurePeerCert(previous, "s2", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	m := etcdMember{Name: "s2", PeerURL: "https://10.0.0.2:2380", InitialCluster: "s1=https://10.0.0.1:2380,s2=https://10.0.0.2:2380", Existing: true}
	if err := m.save(previous); err != nil {
		t.Fatal(err)
	}
	if err := RestoredMembership(data, previous); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "etcd")
	got, err := loadEtcdMember(dir)
	want := etcdMember{Name: "s2", PeerURL: m.PeerURL, InitialCluster: "s2=" + m.PeerURL}
	if err != nil || got == nil || *got != want {
		t.Fatalf("restored member: %+v, %v; want %+v", got, err, want)
	}
	for _, f := range []string{peerCACertFile, peerCAKeyFile, peerCertFile, peerKeyFile} {
		if !bytes.Equal(mustRead(t, filepath.Join(dir, f)), mustRead(t, filepath.Join(previous, f))) {
			t.Errorf("%s not carried over", f)
		}
		if md := mode(t, filepath.Join(dir, f)); md != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, md)
		}
	}

	// A server's own etcd (no member file, or no previous directory)
	// stays its own.
	own := t.TempDir()
	if err := os.MkdirAll(filepath.Join(own, "etcd.previous"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, prev := range []string{"", filepath.Join(own, "etcd.previous")} {
		if err := RestoredMembership(own, prev); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(own, "etcd", memberFile)); err == nil {
			t.Fatalf("previous %q: a member file for a server's own etcd", prev)
		}
	}
}
