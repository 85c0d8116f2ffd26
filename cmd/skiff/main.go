// Command skiff is the one skiff binary: the control plane (server), and
// the tools around it (agent, controllers, kubeconfig, identity, trust,
// token, secrets, etcd-snapshot, api, logs, exec, top, mcp, plan, gossip,
// install, uninstall, version).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"skiff.dev/skiff/nodeagent/shim"
)

func main() {
	// The agent starts this binary as each container's shim.
	shim.RunIfAsked()
	// controller-runtime (the agent's Instance controller) logs through klog.
	ctrllog.SetLogger(klog.NewKlogr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		// skiff exec exits with its command's code, which said its say.
		var exit utilexec.ExitError
		if errors.As(err, &exit) && exit.Exited() {
			os.Exit(exit.ExitStatus())
		}
		fmt.Fprintln(os.Stderr, "skiff:", err)
		os.Exit(1)
	}
}
