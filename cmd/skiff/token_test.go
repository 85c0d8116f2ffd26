package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/identity"
)

// startServer starts a control plane and returns it with the path of its
// admin kubeconfig.
func startServer(t *testing.T) (*apiservertest.Server, string) {
	t.Helper()
	isolateHome(t)
	srv := apiservertest.Start(t)
	return srv, filepath.Join(srv.DataDir, apiserver.AdminKubeconfigFile)
}

// tableRows reads a table that tabwriter printed: the header's words name
// the columns, which start where the words do; cells may hold blanks or be
// empty.
func tableRows(t *testing.T, out string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := []rune(lines[0])
	var names []string
	var starts []int
	for i, r := range header {
		if r != ' ' && (i == 0 || header[i-1] == ' ') {
			starts = append(starts, i)
			names = append(names, strings.Fields(string(header[i:]))[0])
		}
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		runes := []rune(line)
		row := map[string]string{}
		for c, start := range starts {
			end := len(runes)
			if c+1 < len(starts) {
				end = min(starts[c+1], len(runes))
			}
			if start < end {
				row[names[c]] = strings.TrimSpace(string(runes[start:end]))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// rowWith is the row whose column is value, or nil.
func rowWith(rows []map[string]string, column, value string) map[string]string {
	for _, r := range rows {
		if r[column] == value {
			return r
		}
	}
	return nil
}

// TestTokenCommands: token create prints a token alone on stdout that pins
// the server's certificate; list shows each token's expiry and status;
// revoke marks a token revoked once, says so the second time, and names an
// unknown id; a short-lived token shows expired once its time has passed.
func TestTokenCommands(t *testing.T) {
	srv, kubeconfig := startServer(t)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(srv.URL, "https://"), &tls.Config{InsecureSkipVerify: true}) // to read the certificate
	if err != nil {
		t.Fatal(err)
	}
	serverHash := identity.CertificateHash(conn.ConnectionState().PeerCertificates[0])
	conn.Close()

	create := func(args ...string) (identity.JoinToken, string) {
		t.Helper()
		stdout, stderr, err := runSkiff(t, "", append([]string{"token", "create", "--kubeconfig", kubeconfig}, args...)...)
		if err != nil {
			t.Fatalf("token create %v: %v (stderr %q)", args, err, stderr)
		}
		if strings.Count(stdout, "\n") != 1 {
			t.Fatalf("token create printed %q; want the token alone on a line", stdout)
		}
		tok, err := identity.ParseJoinToken(stdout)
		if err != nil {
			t.Fatalf("token create printed %q: %v", stdout, err)
		}
		if !bytes.Equal(tok.CAHash, serverHash) {
			t.Fatalf("token pins %x; the server's certificate is %x", tok.CAHash, serverHash)
		}
		if !strings.Contains(stderr, tok.ID) {
			t.Errorf("stderr %q does not name the token's id %s", stderr, tok.ID)
		}
		return tok, stderr
	}
	list := func() []map[string]string {
		t.Helper()
		stdout, _, err := runSkiff(t, "", "token", "list", "--kubeconfig", kubeconfig)
		if err != nil {
			t.Fatalf("token list: %v", err)
		}
		return tableRows(t, stdout)
	}

	before := time.Now().UTC().Truncate(time.Second)
	day, dayErr := create("--description", "rack 4")
	forever, foreverErr := create("--ttl", "0")
	if !strings.Contains(foreverErr, "never") {
		t.Errorf("--ttl 0: stderr %q; want it to say the token never expires", foreverErr)
	}
	exp, err := time.Parse(time.RFC3339, rowWith(list(), "ID", day.ID)["EXPIRES"])
	if err != nil || exp.Before(before.Add(24*time.Hour)) || exp.After(time.Now().Add(24*time.Hour)) || !strings.Contains(dayErr, exp.Format(time.RFC3339)) {
		t.Errorf("default ttl: expiry %v (%v), stderr %q; want 24h from now", exp, err, dayErr)
	}

	revoke := func(id string) (string, error) {
		stdout, _, err := runSkiff(t, "", "token", "revoke", id, "--kubeconfig", kubeconfig)
		return stdout, err
	}
	if out, err := revoke(day.ID); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke %s: %q, %v", day.ID, out, err)
	}
	if out, err := revoke(day.String()); err != nil || !strings.Contains(out, "already revoked") {
		t.Errorf("revoking again (by the token's text): %q, %v; want it to say so and succeed", out, err)
	}
	if _, err := revoke("zzzzzz"); !errors.Is(err, errNoSuchToken) || !strings.Contains(err.Error(), `"zzzzzz"`) {
		t.Errorf("revoking an unknown id: %v; want %v naming it", err, errNoSuchToken)
	}

	rows := list()
	for _, want := range []map[string]string{
		{"ID": day.ID, "ROLE": "node", "EXPIRES": exp.Format(time.RFC3339), "STATUS": "revoked", "DESCRIPTION": "rack 4"},
		{"ID": forever.ID, "ROLE": "node", "EXPIRES": "never", "STATUS": "valid", "DESCRIPTION": ""},
		{"ID": identity.InitialJoinTokenID, "ROLE": "node", "EXPIRES": "never", "STATUS": "valid", "DESCRIPTION": "made at the server's first start"},
	} {
		if got := rowWith(rows, "ID", want["ID"]); !equalRow(got, want) {
			t.Errorf("token list row %v; want %v", got, want)
		}
	}

	short, _ := create("--ttl", "1s")
	deadline := time.Now().Add(10 * time.Second)
	for {
		row := rowWith(list(), "ID", short.ID)
		if row["STATUS"] == "expired" {
			break
		}
		if row["STATUS"] != "valid" || time.Now().After(deadline) {
			t.Fatalf("a 1s token: %v; want valid, then expired within 10s", row)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func equalRow(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return got != nil
}

func TestTokenStatus(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	record := func(data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "join-token-abc123"}, Type: apiserver.JoinTokenSecretType, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	cases := []struct {
		name string
		data map[string]string
		want string
	}{
		{"no expiry", nil, "valid"},
		{"expires later", map[string]string{apiserver.JoinTokenExpirationKey: "2030-01-02T03:04:06Z"}, "valid"},
		{"expires now", map[string]string{apiserver.JoinTokenExpirationKey: "2030-01-02T03:04:05Z"}, "expired"},
		{"unreadable expiry", map[string]string{apiserver.JoinTokenExpirationKey: "tomorrow"}, "expired"},
		{"revoked", map[string]string{apiserver.JoinTokenRevokedKey: "2030-01-01T00:00:00Z"}, "revoked"},
		{"revoked and expired", map[string]string{apiserver.JoinTokenRevokedKey: "2029-01-01T00:00:00Z", apiserver.JoinTokenExpirationKey: "2029-06-01T00:00:00Z"}, "revoked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := tokenStatus(record(c.data), now); got != c.want {
				t.Errorf("tokenStatus = %s; want %s", got, c.want)
			}
		})
	}
}
