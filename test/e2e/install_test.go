package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestInstall: skiff install writes the binary and a unit systemd accepts
// (and reads the flags of as given), fails clearly where there is no
// systemd to start it, and skiff uninstall takes it away, keeping the data
// unless --purge. Everything goes beneath --root: this machine's / is
// not touched.
func TestInstall(t *testing.T) {
	requireE2E(t)
	root := t.TempDir()
	// A value systemd would split, expand (%h, $HOME) or unquote, were it
	// not quoted.
	nodeName := `n 1 "%h" $HOME \x`
	out := runInstall(t, "install", "server", "--root", root, "--no-start", "--", "--listen", "127.0.0.1:6443", "--node-name", nodeName)
	for _, s := range []string{"not started (--no-start)", "admin kubeconfig (once the server has started): /var/lib/skiff/server/admin.kubeconfig"} {
		if !strings.Contains(out, s) {
			t.Errorf("install output lacks %q:\n%s", s, out)
		}
	}
	bin := filepath.Join(root, "usr/local/bin/skiff")
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("%s: %v %v, want an executable", bin, fi, err)
	}
	if sum(t, bin) != sum(t, skiffBin) {
		t.Errorf("%s is not a copy of %s", bin, skiffBin)
	}
	if v, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
		t.Errorf("%s version: %v\n%s", bin, err, v)
	}
	unit := filepath.Join(root, "etc/systemd/system/skiff-server.service")
	verifyInstalledUnit(t, root, unit, []string{
		"/usr/local/bin/skiff", "server", "--data-dir", "/var/lib/skiff/server", "--listen", "127.0.0.1:6443", "--node-name", nodeName, "$SKIFF_SERVER_ARGS",
	})

	// Without --no-start, on a machine without systemd (this one) or beneath
	// a --root the running systemd does not read: a clear error saying what
	// to run, and the files left in place.
	root2 := t.TempDir()
	cmd := exec.Command(skiffBin, "install", "server", "--root", root2, "--", "--listen", "127.0.0.1:6443")
	combined, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("skiff install server without systemd succeeded:\n%s", combined)
	}
	for _, s := range []string{"was not started", "systemctl daemon-reload && systemctl enable --now skiff-server"} {
		if !strings.Contains(string(combined), s) {
			t.Errorf("error lacks %q:\n%s", s, combined)
		}
	}
	for _, p := range []string{"usr/local/bin/skiff", "etc/systemd/system/skiff-server.service"} {
		if _, err := os.Stat(filepath.Join(root2, p)); err != nil {
			t.Errorf("%s is not left in place: %v", p, err)
		}
	}

	// Uninstall keeps the data...
	data := filepath.Join(root, "var/lib/skiff/server")
	if err := os.MkdirAll(filepath.Join(data, "etcd/member"), 0o700); err != nil {
		t.Fatal(err)
	}
	out = runInstall(t, "uninstall", "server", "--root", root)
	for _, p := range []string{unit, bin} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("skiff uninstall left %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "etcd/member")); err != nil {
		t.Errorf("skiff uninstall removed the data: %v", err)
	}
	if !strings.Contains(out, "kept "+data) {
		t.Errorf("skiff uninstall does not say it kept %s:\n%s", data, out)
	}
	// ...and with --purge removes it.
	runInstall(t, "install", "server", "--root", root, "--no-start", "--", "--listen", "127.0.0.1:6443")
	runInstall(t, "uninstall", "server", "--root", root, "--purge")
	for _, p := range []string{unit, bin, data} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("skiff uninstall --purge left %s", p)
		}
	}
}

// TestInstallAgent: the agent's unit, its settings and its token file.
func TestInstallAgent(t *testing.T) {
	requireE2E(t)
	root := t.TempDir()
	token := "skiff1:" + strings.Repeat("ab", 32) + ":abcdef." + strings.Repeat("01", 16)
	out := runInstall(t, "install", "agent", "--root", root, "--no-start", "--server", "https://10.0.0.1:6443",
		"--join-token", token, "--node-name", "worker-1", "--", "--labels", "zone=a")
	if !strings.Contains(out, `node "worker-1" joins https://10.0.0.1:6443`) {
		t.Errorf("install output:\n%s", out)
	}
	tok := filepath.Join(root, "etc/skiff/join-token")
	if fi, err := os.Stat(tok); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v %v, want mode 0600", tok, fi, err)
	}
	unit := filepath.Join(root, "etc/systemd/system/skiff-agent.service")
	if b, _ := os.ReadFile(unit); bytes.Contains(b, []byte(token)) {
		t.Error("the join token is on the unit")
	}
	verifyInstalledUnit(t, root, unit, []string{
		"/usr/local/bin/skiff", "agent", "--server=${SKIFF_SERVER}", "--join-token=${SKIFF_JOIN_TOKEN}", "--node-name", "worker-1", "--labels", "zone=a", "$SKIFF_AGENT_ARGS",
	})
	runInstall(t, "uninstall", "--root", root)
	for _, p := range []string{unit, tok, filepath.Join(root, "etc/default/skiff-agent"), filepath.Join(root, "usr/local/bin/skiff")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("skiff uninstall left %s", p)
		}
	}
}

func runInstall(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(skiffBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("skiff %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// verifyInstalledUnit runs systemd-analyze verify on the unit written
// beneath root, as config/systemd/systemd_test.go does on the shipped
// ones: on a copy whose ExecStart names the binary installed beneath root
// (verify checks it exists and is executable). Any message about the unit
// fails the test. Where systemd-analyze prints the command line it read
// (debug logging), its words must be want: the flags as given.
func verifyInstalledUnit(t *testing.T, root, unit string, want []string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed (Debian package systemd): the unit is not verified")
		return
	}
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(root, want[0])
	text := strings.Replace(string(data), "\nExecStart="+want[0]+" ", "\nExecStart="+installed+" ", 1)
	if text == string(data) {
		t.Fatalf("%s: no ExecStart=%s ...:\n%s", unit, want[0], data)
	}
	dir := t.TempDir()
	name := filepath.Base(unit)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(level string) string {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, analyze, "verify", "--man=no", name)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL="+level, "SYSTEMD_LOG_COLOR=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
		return string(out)
	}
	out := verify("info")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, name) {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	want = append([]string{installed}, want[1:]...)
	for _, line := range strings.Split(verify("debug"), "\n") {
		if cl, ok := strings.CutPrefix(strings.TrimSpace(line), "Command Line: "); ok {
			if got := dumpedWords(cl); !reflect.DeepEqual(got, want) {
				t.Errorf("systemd reads ExecStart as\n  %q\nwant\n  %q\n(%s)", got, want, cl)
			}
			return
		}
	}
	t.Log("systemd-analyze printed no Command Line: the words of ExecStart are not compared")
}

// dumpedWords reads a command line as systemd dumps it (quote_command_line:
// a word with blanks or quotes in double quotes, \ " $ ` escaped by a
// backslash), then does what systemd does to each word when it runs it:
// $$ becomes $ (the other variables are left as they are).
func dumpedWords(s string) []string {
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			in = true
		case c == '"':
			quoted, in = !quoted, true
		case c == ' ' && !quoted:
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	for i := range words {
		words[i] = strings.ReplaceAll(words[i], "$$", "$")
	}
	return words
}
