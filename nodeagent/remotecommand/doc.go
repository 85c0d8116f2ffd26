// Package remotecommand is the server side of Kubernetes' remote command
// protocol, v4.channel.k8s.io over SPDY/3.1, as the kubelet serves
// pods/exec: client-go's remotecommand.NewSPDYExecutor (kubectl exec's
// fallback, skiff exec) speaks it unchanged.
//
// The client upgrades an HTTP request and opens one stream each for error,
// stdin, stdout, stderr (not with a TTY) and resize (only with a TTY), as
// its query asked (stdin, stdout, stderr, tty). Serve waits for them, runs
// the process with them, and writes how it ended on the error stream as a
// metav1.Status: Success, or reason NonZeroExitCode with an ExitCode cause,
// which client-go returns as an exec.ExitError with that code.
//
//	opts, err := remotecommand.OptionsFromQuery(r.URL.Query())
//	...
//	remotecommand.Serve(w, r, opts, func(ctx context.Context, s remotecommand.Streams) (int, error) {
//		return rt.Exec(ctx, id, runtime.ExecOptions{Args: cmd, Stdin: s.Stdin, ...})
//	})
package remotecommand
