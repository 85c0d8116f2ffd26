package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"skiff.dev/skiff/config/systemd"
	"skiff.dev/skiff/identity"
)

// Where skiff install puts things, as the machine that runs them sees it
// (beneath --root when that is not /).
const (
	unitDir = "/etc/systemd/system"
	// agentJoinToken is the file skiff-agent.service reads its join token
	// from (its default SKIFF_JOIN_TOKEN).
	agentJoinToken = "/etc/skiff/join-token"
	// systemDataDir is where skiff keeps its state when run as root, as
	// the services are.
	systemDataDir = "/var/lib/skiff"
)

// installMarker begins the files skiff install writes; skiff uninstall
// removes an /etc/default file only if it begins so.
const installMarker = "# Written by `skiff install "

// role is what skiff install can put on a machine: the server, or an
// agent joining one.
type role struct {
	name     string // server, agent: the subcommand of skiff it runs
	service  string // skiff-server
	template string // the unit, from config/systemd
	// argsVar is the unit's variable of further flags, last on ExecStart;
	// the flags given to skiff install go before it, so that envFile can
	// still override them.
	argsVar string
	envFile string // the unit's EnvironmentFile
	// defaultDataDir is the data directory when no flag names one.
	defaultDataDir string
	// flags returns the flag set of the command the unit runs, to check
	// the flags given against.
	flags func() *pflag.FlagSet
	// refused are flags of that command a service must not run with.
	refused map[string]string
	// runtimeState is the OCI runtime's state directory of the node's
	// containers, within the data directory.
	runtimeState string
}

var (
	serverRole = &role{
		name: "server", service: "skiff-server", template: systemd.ServerUnit,
		argsVar: "$SKIFF_SERVER_ARGS", envFile: "/etc/default/skiff-server",
		defaultDataDir: filepath.Join(systemDataDir, "server"),
		flags:          func() *pflag.FlagSet { return newServerCommand().Flags() },
		refused: map[string]string{
			"cluster-reset": "restores a snapshot and exits: run it by hand with the service stopped (docs/operations.md, Snapshots)",
			"restore":       "goes with --cluster-reset, which is run by hand with the service stopped",
		},
		runtimeState: "agent/runtime/state",
	}
	agentRole = &role{
		name: "agent", service: "skiff-agent", template: systemd.AgentUnit,
		argsVar: "$SKIFF_AGENT_ARGS", envFile: "/etc/default/skiff-agent",
		defaultDataDir: filepath.Join(systemDataDir, "agent"),
		flags:          func() *pflag.FlagSet { return newAgentCommand().Flags() },
		refused: map[string]string{
			"server":         "is skiff install agent's own flag: put it before --",
			"join-token":     "is skiff install agent's own flag: put it before --",
			"node-name":      "is skiff install agent's own flag: put it before --",
			"simulate-nodes": "is for scale tests, not a service",
			"kubeconfig":     "goes with --simulate-nodes, which is for scale tests, not a service",
		},
		runtimeState: "runtime/state",
	}
	roles = []*role{serverRole, agentRole}
)

func (r *role) unit() string { return r.service + ".service" }

// installFlags are the flags of skiff install and skiff uninstall.
type installFlags struct {
	root    string
	binDir  string
	noStart bool
	purge   bool
	// skiff install agent's
	server, joinToken, nodeName string
}

func (f *installFlags) addCommon(fs *pflag.FlagSet) {
	fs.StringVar(&f.root, "root", "/", "write every file beneath this directory instead of / (an image being built, a test); nothing is started there")
	fs.StringVar(&f.binDir, "bin-dir", "/usr/local/bin", "the directory the skiff binary goes in")
}

func newInstallCommand() *cobra.Command {
	var f installFlags
	cmd := &cobra.Command{
		Use:   "install server|agent [flags] [-- flags of skiff server or skiff agent]",
		Short: "Install skiff on this machine as a systemd service: the server, or an agent joining one",
		Long: "skiff install copies this binary to <bin-dir>/skiff, writes the systemd unit from\n" +
			"config/systemd (skiff-server.service or skiff-agent.service) with the flags after -- on its\n" +
			"ExecStart, then runs systemctl daemon-reload, enable and restart (--no-start: not) and says\n" +
			"what comes next: for the server, the admin kubeconfig and the command that adds a node;\n" +
			"for an agent, the Node it registers. Running it again upgrades the binary and replaces\n" +
			"the flags; the containers keep running through the restart. skiff uninstall undoes it.",
		Example: "  sudo skiff install server -- --listen 0.0.0.0:6443\n" +
			"  sudo skiff install agent --server https://10.0.0.1:6443 --join-token skiff1:3f1c…:ab12cd.9f…\n" +
			"  sudo skiff install agent --server https://10.0.0.1:6443 --join-token ./join-token --node-name n2 -- --labels rack=4",
		Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("skiff install needs a role: server or agent (skiff install server; skiff install agent --server URL --join-token TOKEN)")
			}
			return fmt.Errorf("unknown role %q: want server or agent", args[0])
		},
	}
	f.addCommon(cmd.PersistentFlags())
	cmd.PersistentFlags().BoolVar(&f.noStart, "no-start", false, "write the files only: no systemctl")

	server := &cobra.Command{
		Use:   "server [--bin-dir DIR] [--root DIR] [--no-start] [-- skiff server flags]",
		Short: "Install skiff server (the control plane and a local agent) as skiff-server.service",
		Example: "  sudo skiff install server                              # listens on 127.0.0.1:6443: this machine only\n" +
			"  sudo skiff install server -- --listen 0.0.0.0:6443    # agents on other machines can join",
		Args: func(cmd *cobra.Command, args []string) error { return flagsAfterDash(cmd, args, serverRole) },
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := newInstaller(cmd, f)
			if err != nil {
				return err
			}
			return in.install(cmd.Context(), serverRole, f, args)
		},
	}
	agent := &cobra.Command{
		Use:   "agent --server URL --join-token TOKEN|FILE [--node-name NAME] [--bin-dir DIR] [--root DIR] [--no-start] [-- skiff agent flags]",
		Short: "Install skiff agent as skiff-agent.service, joining the server at --server",
		Example: "  sudo skiff install agent --server https://10.0.0.1:6443 --join-token skiff1:3f1c…:ab12cd.9f…\n" +
			"  sudo skiff install agent --server https://10.0.0.1:6443 --join-token /root/join-token -- --labels zone=a",
		Args: func(cmd *cobra.Command, args []string) error { return flagsAfterDash(cmd, args, agentRole) },
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := newInstaller(cmd, f)
			if err != nil {
				return err
			}
			return in.install(cmd.Context(), agentRole, f, args)
		},
	}
	agent.Flags().StringVar(&f.server, "server", "", "the API server's URL, https://host:port (required)")
	agent.Flags().StringVar(&f.joinToken, "join-token", "", "the join token, a file holding it, or - to read it from stdin (required); it is written to "+agentJoinToken+" (0600)")
	agent.Flags().StringVar(&f.nodeName, "node-name", "", "the Node's name (default: the host name)")
	for _, c := range []*cobra.Command{server, agent} {
		r := serverRole
		if c == agent {
			r = agentRole
		}
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
			return fmt.Errorf("%w (flags of skiff %s go after --: skiff install %s -- --flag value)", err, r.name, r.name)
		})
	}
	cmd.AddCommand(server, agent)
	return cmd
}

// flagsAfterDash accepts arguments only after --: they are the flags of
// the command the unit runs.
func flagsAfterDash(cmd *cobra.Command, args []string, r *role) error {
	if len(args) > 0 && cmd.ArgsLenAtDash() != 0 {
		return fmt.Errorf("unexpected argument %q: the flags of skiff %s go after --, e.g. skiff install %s -- --data-dir /srv/skiff", args[0], r.name, r.name)
	}
	return nil
}

func newUninstallCommand() *cobra.Command {
	var f installFlags
	cmd := &cobra.Command{
		Use:   "uninstall [server|agent] [--root DIR] [--purge]",
		Short: "Undo skiff install: stop and remove the services and the binary, keeping the data unless --purge",
		Long: "skiff uninstall stops and disables skiff-server and skiff-agent (or the one named), stops\n" +
			"the node's containers, removes the units, the files skiff install wrote and the binary,\n" +
			"and keeps the data directories (etcd, certificates, images) unless --purge, which removes\n" +
			"them too.",
		Example: "  sudo skiff uninstall               # both, data kept\n" +
			"  sudo skiff uninstall agent --purge # the agent and its data",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("unexpected argument %q: skiff uninstall [server|agent]", args[1])
			}
			if len(args) == 1 && roleNamed(args[0]) == nil {
				return fmt.Errorf("unknown role %q: want server or agent (or neither: both)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := newInstaller(cmd, f)
			if err != nil {
				return err
			}
			which := roles
			if len(args) == 1 {
				which = []*role{roleNamed(args[0])}
			}
			return in.uninstall(cmd.Context(), which, len(args) == 1, f)
		},
	}
	f.addCommon(cmd.Flags())
	cmd.Flags().Lookup("bin-dir").Usage = "where the binary is when no unit names it"
	cmd.Flags().BoolVar(&f.purge, "purge", false, "remove the data directories too: etcd, certificates, keys, images, logs")
	return cmd
}

func roleNamed(name string) *role {
	for _, r := range roles {
		if r.name == name {
			return r
		}
	}
	return nil
}

// installer writes beneath root and, when root is this machine's own
// (live), asks its systemd to act on what it wrote.
type installer struct {
	root        string
	live        bool
	in          io.Reader
	out, errOut io.Writer
	// systemd says why this machine's systemd cannot be asked (nil: it can).
	systemd func() error
	// systemctl runs systemctl with args.
	systemctl func(ctx context.Context, args ...string) error
	// executable is the binary to install (this one).
	executable func() (string, error)
	// hostAddress is an address of this machine other machines may reach.
	hostAddress func() string
	// processes are the ids of the processes running `skiff NAME` on a
	// data directory.
	processes func(name, dataDir string) []string
	// tokenWait bounds the wait for a started server's join token.
	tokenWait time.Duration
}

func newInstaller(cmd *cobra.Command, f installFlags) (*installer, error) {
	root, err := filepath.Abs(f.root)
	if err != nil {
		return nil, fmt.Errorf("--root: %w", err)
	}
	in := &installer{
		root: root, live: root == "/", in: cmd.InOrStdin(), out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(),
		systemd: systemdRunning, systemctl: runSystemctl, executable: os.Executable,
		hostAddress: hostAddress, processes: skiffProcesses, tokenWait: 30 * time.Second,
	}
	if in.live && os.Geteuid() != 0 {
		return nil, fmt.Errorf("%s changes %s, %s and %s and runs systemctl: run it as root (sudo), or pass --root DIR to work beneath DIR",
			cmd.CommandPath(), f.binDir, unitDir, systemDataDir)
	}
	return in, nil
}

// path is p (as the machine that runs skiff sees it) beneath the root.
func (in *installer) path(p string) string { return filepath.Join(in.root, p) }

// install puts r on the machine: the binary, the unit and (agent) its
// settings, then starts it unless f.noStart.
func (in *installer) install(ctx context.Context, r *role, f installFlags, extra []string) error {
	binDir := filepath.Clean(f.binDir)
	if !filepath.IsAbs(binDir) {
		return fmt.Errorf("--bin-dir %q: want an absolute path", f.binDir)
	}
	bin := filepath.Join(binDir, "skiff")
	var (
		envFile   []byte // agent: /etc/default/skiff-agent
		token     string // agent: the join token
		unitFlags = extra
	)
	if r == agentRole {
		server, err := agentServerURL(f.server)
		if err != nil {
			return err
		}
		if token, err = readJoinToken(f.joinToken, in.in); err != nil {
			return err
		}
		envFile = agentEnvFile(server)
		if f.nodeName != "" {
			unitFlags = append([]string{"--node-name", f.nodeName}, extra...)
		}
	}
	fs, err := in.checkFlags(r, extra, unitFlags, f.server)
	if err != nil {
		return err
	}
	dataDir := fs.Lookup("data-dir").Value.String()
	if !fs.Changed("data-dir") && r == agentRole {
		// The service runs as root; this command may not (--root).
		dataDir = r.defaultDataDir
	}
	if !filepath.IsAbs(dataDir) {
		return fmt.Errorf("--data-dir %q: want an absolute path (the service runs in /)", dataDir)
	}
	unit, err := renderUnit(r, bin, unitFlags)
	if err != nil {
		return err
	}
	if err := in.checkOneNodeAgent(r, fs); err != nil {
		return err
	}

	if err := in.writeFiles(r, bin, unit, token, envFile); err != nil {
		return err
	}
	if in.live {
		in.warnMissing(r, fs)
	}

	enable := "systemctl daemon-reload && systemctl enable --now " + r.service
	if f.noStart {
		fmt.Fprintf(in.out, "not started (--no-start); start it with:\n  %s\n", enable)
	} else {
		if err := in.start(ctx, r, enable, bin, unitFlags, f.server); err != nil {
			return err
		}
	}
	if r == serverRole {
		in.serverNext(dataDir, fs.Lookup("listen").Value.String(), f.noStart)
	} else {
		name := f.nodeName
		if name == "" {
			name = fs.Lookup("node-name").Value.String()
		}
		in.agentNext(name, f.server, f.noStart)
	}
	return nil
}

// checkOneNodeAgent refuses r when the other role is installed and the
// two would both run a node agent. One node agent a machine: a second
// would claim the same Node name, ports and containers.
func (in *installer) checkOneNodeAgent(r *role, fs *pflag.FlagSet) error {
	other := serverRole
	if r == serverRole {
		other = agentRole
	}
	if it := in.inspect(other); it.unit && it.runsAgent() && (r == agentRole || fs.Lookup("disable-agent").Value.String() != "true") {
		return fmt.Errorf("%s is installed here, and with skiff %s this machine would run two node agents: "+
			"skiff server's local agent already makes it a node (skiff uninstall %s first, or run the server with --disable-agent)",
			in.path(filepath.Join(unitDir, other.unit())), r.name, other.name)
	}
	return nil
}

// checkFlags checks the flags given after -- (extra) as the command the
// unit runs would, refusing those a service must not have, then parses
// the unit's whole command line (its own flags, then flags) to read the
// values the service will have.
func (in *installer) checkFlags(r *role, extra, flags []string, server string) (*pflag.FlagSet, error) {
	given := r.flags()
	given.SetOutput(io.Discard)
	if err := given.Parse(extra); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, fmt.Errorf("the flags after -- are skiff %s's: see skiff %s --help", r.name, r.name)
		}
		return nil, fmt.Errorf("the flags after -- are skiff %s's: %w", r.name, err)
	}
	if given.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q after --: skiff %s takes flags only", given.Arg(0), r.name)
	}
	for name, why := range r.refused {
		if given.Changed(name) {
			return nil, fmt.Errorf("--%s after --: it %s", name, why)
		}
	}
	all, err := templateFlags(r)
	if err != nil {
		return nil, err
	}
	if r == agentRole {
		all = append(all, "--server", server, "--join-token", agentJoinToken)
	}
	all = append(all, flags...)
	fs := r.flags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(all); err != nil {
		return nil, fmt.Errorf("skiff %s %s: %w", r.name, shellWords(all), err)
	}
	return fs, nil
}

// agentServerURL checks --server: an https URL, written as is to the
// agent's environment file (so nothing in it may need quoting).
func agentServerURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("skiff install agent needs --server: the API server's URL, e.g. https://10.0.0.1:6443 (skiff install server printed the whole command)")
	}
	u, err := parseServerURL(s)
	if err != nil {
		return "", err
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_~:/[]", c)) {
			return "", fmt.Errorf("--server %q: want https://host:port, without %q", s, c)
		}
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return "", fmt.Errorf("--server %q: want https://host:port, without a path", s)
	}
	return s, nil
}

// readJoinToken reads --join-token: the token, a file holding it, or -
// for stdin.
func readJoinToken(s string, stdin io.Reader) (string, error) {
	if s == "" {
		return "", errors.New("skiff install agent needs --join-token: the server's join token (skiff install server printed it; skiff token create makes another), or a file holding it")
	}
	text := s
	if s == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, 4096))
		if err != nil {
			return "", fmt.Errorf("--join-token -: %w", err)
		}
		text = string(b)
	} else if _, err := identity.ParseJoinToken(s); err != nil {
		b, ferr := os.ReadFile(s)
		if ferr != nil {
			if errors.Is(ferr, os.ErrNotExist) {
				return "", fmt.Errorf("--join-token %q: neither a join token (skiff1:<sha256>:<id>.<secret>) nor a file", s)
			}
			return "", fmt.Errorf("--join-token: %w", ferr)
		}
		text = string(b)
	}
	tok, err := identity.ParseJoinToken(text)
	if err != nil {
		return "", fmt.Errorf("--join-token: %w", err)
	}
	return tok.String(), nil
}
