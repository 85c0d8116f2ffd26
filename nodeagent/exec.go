package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/remotecommand"
	"skiff.dev/skiff/nodeagent/runtime"
)

// execInContainer serves POST /exec/{namespace}/{instance}/{uid}/{container}
// ?command=...&stdin=&stdout=&stderr=&tty=, the kubelet's exec path, for
// the API server's exec subresource (which proxies the client's upgraded
// connection here): it runs the command in the container through the
// runtime, streamed by Kubernetes' remote command protocol.
func (s *server) execInContainer(w http.ResponseWriter, r *http.Request) {
	if !s.fromAPIServer(r) {
		writeStatus(w, apierrors.NewForbidden(skiffv1alpha1.Resource("instances/exec"), r.PathValue("instance"),
			errors.New("only the apiserver may exec in containers: POST /apis/skiff.dev/v1alpha1/namespaces/NS/instances/NAME/exec to it")))
		return
	}
	q := r.URL.Query()
	opts, err := remotecommand.OptionsFromQuery(q)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	command := q["command"]
	if len(command) == 0 {
		writeStatus(w, apierrors.NewBadRequest("no command to run: give it as command=...&command=..."))
		return
	}
	key := client.ObjectKey{Namespace: r.PathValue("namespace"), Name: r.PathValue("instance")}
	id, err := s.execTarget(r.Context(), key, types.UID(r.PathValue("uid")), r.PathValue("container"))
	if err != nil {
		writeStatus(w, err)
		return
	}
	remotecommand.Serve(w, r, opts, func(ctx context.Context, st remotecommand.Streams) (int, error) {
		return s.rt.Exec(ctx, id, runtime.ExecOptions{
			Args: command, Stdin: st.Stdin, Stdout: st.Stdout, Stderr: st.Stderr, TTY: opts.TTY, Resize: st.Resize,
		})
	})
}

// execTarget is the runtime's id of a running container of the Instance
// key with that uid (not a later Instance of the same name), or an API
// error that says why there is none.
func (s *server) execTarget(ctx context.Context, key client.ObjectKey, uid types.UID, container string) (string, error) {
	gr := skiffv1alpha1.Resource("instances")
	var inst skiffv1alpha1.Instance
	if err := s.instances.Get(ctx, key, &inst); err != nil {
		if apierrors.IsNotFound(err) {
			return "", apierrors.NewNotFound(gr, fmt.Sprintf("%s (not on this node)", key))
		}
		return "", apierrors.NewInternalError(fmt.Errorf("instance %s: %w", key, err))
	}
	if inst.UID != uid {
		return "", apierrors.NewNotFound(gr, fmt.Sprintf("%s with uid %s (this node runs uid %s)", key, uid, inst.UID))
	}
	if !hasContainer(&inst, container) {
		return "", apierrors.NewBadRequest(fmt.Sprintf("instance %s has no container %q", key, container))
	}
	id := containerID(&inst, container)
	st, err := s.rt.State(ctx, id)
	switch {
	case errors.Is(err, runtime.ErrNotFound):
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %q of instance %s is not running: it has not been created yet", container, key))
	case err != nil:
		return "", apierrors.NewInternalError(fmt.Errorf("container %q of instance %s: %w", container, key, err))
	case st.State != runtime.Running:
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %q of instance %s is not running (%s)", container, key, st.State))
	}
	return id, nil
}

func hasContainer(inst *skiffv1alpha1.Instance, name string) bool {
	for _, c := range allContainers(inst) {
		if c.Name == name {
			return true
		}
	}
	return false
}

// writeStatus answers err as a metav1.Status, which client-go's executors
// show by its message.
func writeStatus(w http.ResponseWriter, err error) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		status = apierrors.NewInternalError(err)
	}
	st := status.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}
