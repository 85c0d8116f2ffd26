package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"skiff.dev/skiff/config/systemd"
	"skiff.dev/skiff/identity"
)

// testJoinToken is a well-formed join token.
func testJoinToken(t *testing.T) string {
	t.Helper()
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	hash := sha256.Sum256([]byte("certificate"))
	return identity.JoinToken{CAHash: hash[:], ID: "abcdef", Secret: secret}.String()
}

func TestInstallExecArgRoundTrip(t *testing.T) {
	for _, arg := range []string{
		"plain", "--listen", "0.0.0.0:6443", "", "a b", `say "hi"`, `back\slash`, "it's",
		"100%", "%n", "$HOME", "${SKIFF_SERVER}", "$$", ";", "a;b", "zone=eu west", "ünïcode", "tab\there",
	} {
		q, err := execArg(arg)
		if strings.ContainsRune(arg, '\t') {
			if err == nil {
				t.Errorf("execArg(%q) = %q, want an error (control character)", arg, q)
			}
			continue
		}
		if err != nil {
			t.Fatalf("execArg(%q): %v", arg, err)
		}
		line := "/usr/local/bin/skiff " + q + " tail"
		words, err := execWords(line)
		if err != nil {
			t.Fatalf("execWords(%q): %v", line, err)
		}
		if want := []string{"/usr/local/bin/skiff", arg, "tail"}; !reflect.DeepEqual(words, want) {
			t.Errorf("execArg(%q) = %q, read back as %q", arg, q, words)
		}
		if strings.ContainsAny(arg, "%$") && !strings.Contains(q, "%%") && !strings.Contains(q, "$$") {
			t.Errorf("execArg(%q) = %q: %% and $ must be doubled", arg, q)
		}
	}
}

func TestInstallRenderUnit(t *testing.T) {
	for _, tc := range []struct {
		r     *role
		flags []string
		want  []string
	}{
		{serverRole, []string{"--listen", "0.0.0.0:6443", "--agent-zone", "eu 1"},
			[]string{"/opt/bin/skiff", "server", "--data-dir", "/var/lib/skiff/server", "--listen", "0.0.0.0:6443", "--agent-zone", "eu 1", "$SKIFF_SERVER_ARGS"}},
		{agentRole, []string{"--node-name", "n1"},
			[]string{"/opt/bin/skiff", "agent", "--server=${SKIFF_SERVER}", "--join-token=${SKIFF_JOIN_TOKEN}", "--node-name", "n1", "$SKIFF_AGENT_ARGS"}},
		{agentRole, nil,
			[]string{"/opt/bin/skiff", "agent", "--server=${SKIFF_SERVER}", "--join-token=${SKIFF_JOIN_TOKEN}", "$SKIFF_AGENT_ARGS"}},
	} {
		unit, err := renderUnit(tc.r, "/opt/bin/skiff", tc.flags)
		if err != nil {
			t.Fatal(err)
		}
		line, err := execStart(unit)
		if err != nil {
			t.Fatal(err)
		}
		words, err := execWords(line)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(words, tc.want) {
			t.Errorf("%s: ExecStart=%s\nwords %q\nwant  %q", tc.r.unit(), line, words, tc.want)
		}
		if !strings.HasPrefix(unit, installMarker+tc.r.name+"`") {
			t.Errorf("%s: no header:\n%s", tc.r.unit(), unit)
		}
		// Everything else is the template's.
		for _, l := range strings.Split(tc.r.template, "\n") {
			if !strings.HasPrefix(l, "ExecStart=") && !strings.Contains(unit, l+"\n") {
				t.Errorf("%s: the template's line %q is missing", tc.r.unit(), l)
			}
		}
	}
	// A template the installer cannot fill in is an error, not a unit.
	bad := *serverRole
	bad.template = strings.ReplaceAll(systemd.ServerUnit, " $SKIFF_SERVER_ARGS", "")
	if _, err := renderUnit(&bad, "/usr/local/bin/skiff", nil); err == nil {
		t.Error("a template without $SKIFF_SERVER_ARGS rendered")
	}
}

func TestInstallServerFiles(t *testing.T) {
	root := t.TempDir()
	out, stderr, err := runSkiff(t, "", "install", "server", "--root", root, "--no-start", "--bin-dir", "/opt/skiff/bin",
		"--", "--listen", "10.1.2.3:7443", "--data-dir", "/srv/skiff", "--audit-log=false")
	if err != nil {
		t.Fatalf("install server: %v\n%s%s", err, out, stderr)
	}
	bin := filepath.Join(root, "opt/skiff/bin/skiff")
	fi, err := os.Stat(bin)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("binary %s: %v %v", bin, fi, err)
	}
	self, _ := os.Executable()
	if a, b := fileHash(t, self), fileHash(t, bin); a != b {
		t.Error("the installed binary is not this one")
	}
	unitPath := filepath.Join(root, "etc/systemd/system/skiff-server.service")
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(unitPath); fi.Mode().Perm() != 0o644 {
		t.Errorf("unit mode %v, want 0644", fi.Mode().Perm())
	}
	line, _ := execStart(string(unit))
	words, _ := execWords(line)
	want := []string{"/opt/skiff/bin/skiff", "server", "--data-dir", "/var/lib/skiff/server", "--listen", "10.1.2.3:7443", "--data-dir", "/srv/skiff", "--audit-log=false", "$SKIFF_SERVER_ARGS"}
	if !reflect.DeepEqual(words, want) {
		t.Errorf("ExecStart words %q, want %q", words, want)
	}
	for _, s := range []string{
		"not started (--no-start)",
		"systemctl daemon-reload && systemctl enable --now skiff-server",
		"/srv/skiff/admin.kubeconfig",
		"skiff install agent --server https://10.1.2.3:7443 --join-token <the token in /srv/skiff/join-token>",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	// Only beneath the root; the data directory is the server's to make.
	var files []string
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, _ error) error {
		if !fi.IsDir() {
			files = append(files, strings.TrimPrefix(p, root))
		}
		return nil
	})
	slices.Sort(files)
	if want := []string{"/etc/systemd/system/skiff-server.service", "/opt/skiff/bin/skiff"}; !reflect.DeepEqual(files, want) {
		t.Errorf("files %q, want %q", files, want)
	}

	// Again, same flags: the same unit; the binary, now the same file,
	// is not copied onto itself.
	in := testInstaller(t, root, false)
	in.executable = func() (string, error) { return bin, nil }
	if err := in.install(t.Context(), serverRole, installFlags{binDir: "/opt/skiff/bin", noStart: true}, []string{"--listen", "10.1.2.3:7443", "--data-dir", "/srv/skiff", "--audit-log=false"}); err != nil {
		t.Fatal(err)
	}
	if got := in.out.(*bytes.Buffer).String(); !strings.Contains(got, "is this binary") {
		t.Errorf("second install:\n%s", got)
	}
	if again, _ := os.ReadFile(unitPath); !bytes.Equal(again, unit) {
		t.Errorf("second install changed the unit:\n%s", again)
	}
}

func TestInstallServerListenLoopback(t *testing.T) {
	out, stderr, err := runSkiff(t, "", "install", "server", "--root", t.TempDir(), "--no-start")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(out, "only this machine reaches it") || !strings.Contains(out, "skiff install server -- --listen 0.0.0.0:6443") || strings.Contains(out, "install agent") {
		t.Errorf("a server on 127.0.0.1 should say nodes cannot join:\n%s", out)
	}
}

func TestInstallAgentFiles(t *testing.T) {
	root := t.TempDir()
	token := testJoinToken(t)
	tokenFile := filepath.Join(t.TempDir(), "join-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A literal token, a file and stdin give the same files.
	for _, tc := range []struct{ arg, stdin string }{{token, ""}, {tokenFile, ""}, {"-", token + "\n"}} {
		out, stderr, err := runSkiff(t, tc.stdin, "install", "agent", "--root", root, "--no-start",
			"--server", "https://10.0.0.1:6443", "--join-token", tc.arg, "--node-name", "n 1", "--", "--labels", "rack=4", "--data-dir", "/srv/agent")
		if err != nil {
			t.Fatalf("install agent --join-token %s: %v\n%s%s", tc.arg, err, out, stderr)
		}
		if !strings.Contains(out, `node "n 1" joins https://10.0.0.1:6443`) {
			t.Errorf("output:\n%s", out)
		}
		tokPath := filepath.Join(root, agentJoinToken)
		got, err := os.ReadFile(tokPath)
		if err != nil || strings.TrimSpace(string(got)) != token {
			t.Errorf("%s: %q, %v; want the token", tokPath, got, err)
		}
		if fi, _ := os.Stat(tokPath); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", tokPath, fi.Mode().Perm())
		}
		env, _ := os.ReadFile(filepath.Join(root, "etc/default/skiff-agent"))
		for _, s := range []string{"\nSKIFF_SERVER=https://10.0.0.1:6443\n", "\nSKIFF_JOIN_TOKEN=/etc/skiff/join-token\n"} {
			if !strings.Contains(string(env), s) {
				t.Errorf("/etc/default/skiff-agent lacks %q:\n%s", s, env)
			}
		}
		unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/skiff-agent.service"))
		if strings.Contains(string(unit), token) || strings.Contains(string(env), token) {
			t.Error("the token is in the unit or its environment file, not only in its 0600 file")
		}
		line, _ := execStart(string(unit))
		words, _ := execWords(line)
		want := []string{"/usr/local/bin/skiff", "agent", "--server=${SKIFF_SERVER}", "--join-token=${SKIFF_JOIN_TOKEN}", "--node-name", "n 1", "--labels", "rack=4", "--data-dir", "/srv/agent", "$SKIFF_AGENT_ARGS"}
		if !reflect.DeepEqual(words, want) {
			t.Errorf("ExecStart words %q, want %q", words, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/default/skiff-agent.bak")); err == nil {
		t.Error("skiff install backed up its own file")
	}
}

func TestInstallRefusesBadInput(t *testing.T) {
	token := testJoinToken(t)
	agent := func(args ...string) []string {
		return append([]string{"install", "agent", "--root", t.TempDir(), "--no-start"}, args...)
	}
	server := func(args ...string) []string {
		return append([]string{"install", "server", "--root", t.TempDir(), "--no-start"}, args...)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"install"}, "needs a role: server or agent"},
		{[]string{"install", "controller"}, `unknown role "controller"`},
		{[]string{"uninstall", "controller"}, `unknown role "controller"`},
		{server("--listen", "0.0.0.0:6443"), "flags of skiff server go after --"},
		{server("extra"), `unexpected argument "extra"`},
		{server("--", "--no-such-flag"), "the flags after -- are skiff server's: unknown flag: --no-such-flag"},
		{server("--", "--listen", "0.0.0.0:6443", "stray"), `unexpected argument "stray" after --`},
		{server("--", "--cluster-reset"), "--cluster-reset after --"},
		{server("--", "--data-dir", "relative/dir"), "want an absolute path"},
		{server("--bin-dir", "bin"), `--bin-dir "bin": want an absolute path`},
		{agent("--join-token", token), "needs --server"},
		{agent("--server", "https://10.0.0.1:6443"), "needs --join-token"},
		{agent("--server", "http://10.0.0.1:6443", "--join-token", token), "want https://host[:port]"},
		{agent("--server", "https://10.0.0.1:6443/x y", "--join-token", token), "want https://host:port"},
		{agent("--server", "https://10.0.0.1:6443", "--join-token", "skiff1:nope"), "neither a join token"},
		{agent("--server", "https://10.0.0.1:6443", "--join-token", token, "--", "--server", "https://x:1"), "--server after --"},
		{agent("--server", "https://10.0.0.1:6443", "--join-token", token, "--", "--simulate-nodes", "3"), "--simulate-nodes after --"},
	} {
		out, stderr, err := runSkiff(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("skiff %s: %v, want an error with %q\n%s%s", strings.Join(tc.args, " "), err, tc.want, out, stderr)
		}
	}
	// A file that is not a token.
	bad := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(bad, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runSkiff(t, "", agent("--server", "https://10.0.0.1:6443", "--join-token", bad)...); err == nil || !strings.Contains(err.Error(), "malformed join token") {
		t.Errorf("--join-token FILE without a token: %v", err)
	}
}

// testInstaller is an installer beneath root whose systemd is absent, or
// (live) a recording fake.
func testInstaller(t *testing.T, root string, live bool) *installer {
	t.Helper()
	return &installer{
		root: root, live: live, out: &bytes.Buffer{}, errOut: &bytes.Buffer{},
		systemd:     func() error { return errNoSystemd },
		systemctl:   func(context.Context, ...string) error { t.Fatal("systemctl without systemd"); return nil },
		executable:  os.Executable,
		hostAddress: func() string { return "192.0.2.7" },
		processes:   func(string, string) []string { return nil },
		tokenWait:   5 * time.Second,
	}
}

var errNoSystemd = &os.PathError{Op: "lstat", Path: "/run/systemd/system", Err: os.ErrNotExist}

func TestInstallStart(t *testing.T) {
	root := t.TempDir()
	token := testJoinToken(t)
	in := testInstaller(t, root, true)
	var calls []string
	in.systemd = func() error { return nil }
	in.systemctl = func(_ context.Context, args ...string) error {
		calls = append(calls, strings.Join(args, " "))
		if args[0] == "restart" {
			// The server writes its join token as it starts.
			go func() {
				time.Sleep(300 * time.Millisecond)
				p := filepath.Join(root, "/var/lib/skiff/server/join-token")
				_ = os.MkdirAll(filepath.Dir(p), 0o700)
				_ = os.WriteFile(p, []byte(token+"\n"), 0o600)
			}()
		}
		return nil
	}
	if err := in.install(t.Context(), serverRole, installFlags{binDir: "/usr/local/bin"}, []string{"--listen", "0.0.0.0:6443"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"daemon-reload", "enable skiff-server", "restart skiff-server"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("systemctl %q, want %q", calls, want)
	}
	out := in.out.(*bytes.Buffer).String()
	for _, s := range []string{
		"skiff-server is running",
		"admin kubeconfig: /var/lib/skiff/server/admin.kubeconfig",
		"skiff install agent --server https://192.0.2.7:6443 --join-token " + token,
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestInstallWithoutSystemd(t *testing.T) {
	root := t.TempDir()
	in := testInstaller(t, root, true)
	err := in.install(t.Context(), serverRole, installFlags{binDir: "/usr/local/bin"}, []string{"--listen", "0.0.0.0:6443"})
	if err == nil {
		t.Fatal("installed and started without systemd")
	}
	for _, s := range []string{
		"/run/systemd/system",
		"skiff-server was not started",
		"systemctl daemon-reload && systemctl enable --now skiff-server",
		"/usr/local/bin/skiff server --data-dir /var/lib/skiff/server --listen 0.0.0.0:6443",
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q:\n%v", s, err)
		}
	}
	for _, p := range []string{"usr/local/bin/skiff", "etc/systemd/system/skiff-server.service"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s is not left in place: %v", p, err)
		}
	}
	// Beneath another root, systemd there or not, nothing is started.
	other := testInstaller(t, t.TempDir(), false)
	other.systemd = func() error { return nil }
	if err := other.install(t.Context(), agentRole, installFlags{binDir: "/usr/local/bin", server: "https://10.0.0.1:6443", joinToken: testJoinToken(t)}, nil); err == nil ||
		!strings.Contains(err.Error(), "systemctl daemon-reload && systemctl enable --now skiff-agent") {
		t.Errorf("install beneath --root without --no-start: %v", err)
	}
}

func TestInstallUninstall(t *testing.T) {
	root := t.TempDir()
	install := func(args ...string) {
		t.Helper()
		if out, stderr, err := runSkiff(t, "", append([]string{"install"}, args...)...); err != nil {
			t.Fatalf("skiff install %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
	}
	uninstall := func(args ...string) string {
		t.Helper()
		out, stderr, err := runSkiff(t, "", append([]string{"uninstall", "--root", root}, args...)...)
		if err != nil {
			t.Fatalf("skiff uninstall %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	exists := func(p string) bool {
		_, err := os.Stat(filepath.Join(root, p))
		return err == nil
	}
	install("server", "--root", root, "--no-start", "--", "--data-dir", "/srv/skiff")
	// One node agent a machine.
	if _, _, err := runSkiff(t, "", "install", "agent", "--root", root, "--no-start", "--server", "https://10.0.0.1:6443", "--join-token", testJoinToken(t)); err == nil ||
		!strings.Contains(err.Error(), "two node agents") {
		t.Errorf("an agent beside a server with its local agent: %v", err)
	}
	install("server", "--root", root, "--no-start", "--", "--data-dir", "/srv/skiff", "--disable-agent")
	install("agent", "--root", root, "--no-start", "--server", "https://10.0.0.1:6443", "--join-token", testJoinToken(t))
	for _, d := range []string{"srv/skiff/etcd", "var/lib/skiff/agent/store"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	// The agent goes; the server still runs the binary.
	out := uninstall("agent")
	for _, p := range []string{"etc/systemd/system/skiff-agent.service", "etc/default/skiff-agent", "etc/skiff/join-token", "etc/skiff"} {
		if exists(p) {
			t.Errorf("%s is left", p)
		}
	}
	if !exists("usr/local/bin/skiff") || !exists("etc/systemd/system/skiff-server.service") {
		t.Error("uninstalling the agent removed the server's unit or the binary")
	}
	if !exists("var/lib/skiff/agent/store") || !strings.Contains(out, "kept "+filepath.Join(root, "var/lib/skiff/agent")) {
		t.Errorf("the agent's data is not kept:\n%s", out)
	}
	// The server, its data dir read from its unit: kept.
	out = uninstall("server")
	if exists("etc/systemd/system/skiff-server.service") || exists("usr/local/bin/skiff") {
		t.Error("the server's unit or the binary is left")
	}
	if !exists("srv/skiff/etcd") || !strings.Contains(out, "kept "+filepath.Join(root, "srv/skiff")) || !strings.Contains(out, "--purge") {
		t.Errorf("the server's data is not kept, or not said:\n%s", out)
	}
	// Nothing installed: a no-op, unless --purge, which takes the data of
	// the default directories (the server's unit, with /srv/skiff, is gone).
	uninstall()
	install("server", "--root", root, "--no-start", "--", "--data-dir", "/srv/skiff")
	// A server that runs on it holds its lock: the data stays.
	lock, err := os.Create(filepath.Join(root, "srv/skiff/lock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runSkiff(t, "", "uninstall", "server", "--root", root, "--purge"); err == nil || !strings.Contains(err.Error(), "a skiff server runs on it") {
		t.Errorf("purge of a locked data dir: %v", err)
	}
	if !exists("srv/skiff/etcd") {
		t.Fatal("a locked data dir was removed")
	}
	lock.Close()
	install("server", "--root", root, "--no-start", "--", "--data-dir", "/srv/skiff")
	out = uninstall("--purge")
	for _, p := range []string{"srv/skiff", "var/lib/skiff", "usr/local/bin/skiff", "etc/systemd/system/skiff-server.service"} {
		if exists(p) {
			t.Errorf("--purge left %s:\n%s", p, out)
		}
	}
}

func TestInstallUninstallKeepsOthersFiles(t *testing.T) {
	root := t.TempDir()
	env := filepath.Join(root, "etc/default/skiff-agent")
	if err := os.MkdirAll(filepath.Dir(env), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env, []byte("SKIFF_AGENT_ARGS=--labels zone=a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := runSkiff(t, "", "install", "agent", "--root", root, "--no-start", "--server", "https://10.0.0.1:6443", "--join-token", testJoinToken(t)); err != nil ||
		!strings.Contains(out, "kept the previous "+env+" as "+env+".bak") {
		t.Fatalf("install over an /etc/default/skiff-agent of someone else's: %v\n%s%s", err, out, stderr)
	}
	if b, _ := os.ReadFile(env + ".bak"); string(b) != "SKIFF_AGENT_ARGS=--labels zone=a\n" {
		t.Errorf("backup %q", b)
	}
	// Its own file goes; one it did not write stays.
	if err := os.Rename(env+".bak", env); err != nil {
		t.Fatal(err)
	}
	out, _, err := runSkiff(t, "", "uninstall", "agent", "--root", root)
	if err != nil || !strings.Contains(out, "kept "+env) {
		t.Errorf("uninstall: %v\n%s", err, out)
	}
	if _, err := os.Stat(env); err != nil {
		t.Error("uninstall removed an /etc/default/skiff-agent it did not write")
	}
}

func TestInstallUninstallLive(t *testing.T) {
	root := t.TempDir()
	in := testInstaller(t, root, false)
	if err := in.install(t.Context(), serverRole, installFlags{binDir: "/usr/local/bin", noStart: true}, nil); err != nil {
		t.Fatal(err)
	}
	in = testInstaller(t, root, true)
	var calls []string
	in.systemd = func() error { return nil }
	in.systemctl = func(_ context.Context, args ...string) error {
		calls = append(calls, strings.Join(args, " "))
		return nil
	}
	// A server still running by hand: nothing is removed.
	in.processes = func(name, dataDir string) []string {
		if name == "server" && dataDir == "/var/lib/skiff/server" {
			return []string{"4242"}
		}
		return nil
	}
	if err := in.uninstall(t.Context(), roles, false, installFlags{binDir: "/usr/local/bin"}); err == nil || !strings.Contains(err.Error(), "process 4242") {
		t.Errorf("uninstall with skiff server running: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/skiff-server.service")); err != nil {
		t.Error("the unit was removed while the server runs")
	}
	in.processes = func(string, string) []string { return nil }
	calls = nil
	if err := in.uninstall(t.Context(), roles, false, installFlags{binDir: "/usr/local/bin"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"disable --now skiff-server", "daemon-reload"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("systemctl %q, want %q", calls, want)
	}
}

func TestInstallMountinfoUnescape(t *testing.T) {
	if got := unescapeMountinfo(`/var/lib/skiff/a\040b\134c`); got != `/var/lib/skiff/a b\c` {
		t.Errorf("unescape: %q", got)
	}
	mounts, err := mountsBeneath(t.TempDir())
	if err != nil || len(mounts) != 0 {
		t.Errorf("mounts beneath a new directory: %q, %v", mounts, err)
	}
}

func fileHash(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestInstallSkiffProcesses(t *testing.T) {
	// sh runs the script "server" in its working directory, and shows as
	// `skiff server --data-dir ...`.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "server"), []byte("sleep 30\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func(dataDir string) string {
		cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"skiff", "server", "--data-dir", dataDir}, Dir: dir}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		// Start returns while the kernel may still be setting up the
		// new program: its /proc cmdline is empty until then.
		pid := strconv.Itoa(cmd.Process.Pid)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if b, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline")); err == nil && strings.HasPrefix(string(b), "skiff\x00server\x00") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %s never showed as skiff server", pid)
			}
		}
		return pid
	}
	abs, rel := start("/srv/skiff"), start("data")
	for _, tc := range []struct {
		name, dataDir string
		want          string
	}{
		{"server", "/srv/skiff", abs},
		{"server", filepath.Join(dir, "data"), rel},
		{"server", "/srv/other", ""},
		{"agent", "/srv/skiff", ""},
	} {
		pids := skiffProcesses(tc.name, tc.dataDir)
		if tc.want == "" && len(pids) > 0 || tc.want != "" && !slices.Contains(pids, tc.want) {
			t.Errorf("skiffProcesses(%s, %s) = %v, want %q", tc.name, tc.dataDir, pids, tc.want)
		}
	}
}

// TestPurgeRefusesWhatIsNotSkiffs: a purge never removes the root, a
// top-level directory, or a directory with nothing skiff made in it.
func TestPurgeRefusesWhatIsNotSkiffs(t *testing.T) {
	plain := t.TempDir()
	if err := os.WriteFile(filepath.Join(plain, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/", "/srv", "relative/dir", plain} {
		if err := purgeDataDir(dir, false); err == nil || !strings.Contains(err.Error(), "not a skiff data directory") {
			t.Errorf("purge %s: %v, want refused", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(plain, "precious")); err != nil {
		t.Errorf("a refused purge removed files: %v", err)
	}
	ours := t.TempDir()
	if err := os.Mkdir(filepath.Join(ours, "etcd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := purgeDataDir(ours, false); err != nil {
		t.Errorf("purge of a server's data dir: %v", err)
	}
}
