package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// lastAppliedAnnotation is kubectl's copy of the last applied object:
// noise for a model, and as large as the object.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// cleanObject is obj as JSON, without managed fields and other noise.
func cleanObject(obj client.Object) (map[string]any, error) {
	obj = obj.DeepCopyObject().(client.Object)
	obj.SetManagedFields(nil)
	if ann := obj.GetAnnotations(); ann[lastAppliedAnnotation] != "" {
		delete(ann, lastAppliedAnnotation)
		obj.SetAnnotations(ann)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", obj.GetName(), err)
	}
	// A second copy of the template, for rollback_workload.
	if st, ok := m["status"].(map[string]any); ok && st["lastAvailableTemplate"] != nil {
		st["lastAvailableTemplate"] = "(omitted: the template of lastAvailableRevision, which rollback_workload returns to)"
	}
	return m, nil
}

// apiError is a tool error carrying the API server's message (with the
// field path for invalid objects), as kubectl prints it.
func apiError(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, apiErrorMessage(err))
}

// apiErrorMessage is err, or for the API server's errors its message
// alone (the Status' details are noise for a model).
func apiErrorMessage(err error) error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return errors.New(status.Status().Message)
	}
	return err
}

// ns is the namespace of a call: the argument, else the bridge's.
func (b *Bridge) ns(arg string) string {
	if arg != "" {
		return arg
	}
	return b.cfg.Namespace
}

// startList checks a list's page size and finds the caller's Conn.
func (b *Bridge) startList(ctx context.Context, req *sdk.CallToolRequest, p Paging) (int, *Conn, error) {
	n, err := limit(p.Limit)
	if err != nil {
		return 0, nil, err
	}
	conn, err := b.conns.For(ctx, req.Extra)
	return n, conn, err
}

// limit is a list's page size argument: default 50, at most 500.
func limit(arg int) (int, error) {
	switch {
	case arg == 0:
		return 50, nil
	case arg < 0 || arg > 500:
		return 0, fmt.Errorf("argument limit: must be 1 to 500 (got %d)", arg)
	}
	return arg, nil
}

// checkKind refuses kinds on the deny list.
func (b *Bridge) checkKind(kind string) error {
	if b.cfg.denied(kind) {
		return refuse("kind %s is denied to this bridge (--deny-kinds)", kind)
	}
	return nil
}

// fetchList pages through list objects of one kind with the API server's
// own continue tokens.
func fetchList[L client.ObjectList, R any](c client.Reader, newList func() L, items func(L) []R, opts ...client.ListOption) fetchFunc[R] {
	return func(ctx context.Context, cont, rv string, limit int64) ([]R, string, string, error) {
		list := newList()
		all := append([]client.ListOption{client.Limit(limit), client.Continue(cont)}, opts...)
		if cont == "" && rv != "" {
			// The first page again, as it was: the same snapshot as the
			// pages after it (within etcd's compaction window).
			all = append(all, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, ResourceVersionMatch: metav1.ResourceVersionMatchExact}})
		}
		if err := c.List(ctx, list, all...); err != nil {
			return nil, "", "", err
		}
		return items(list), list.GetContinue(), list.GetResourceVersion(), nil
	}
}

func jsonString(v any) string {
	data, _ := json.MarshalIndent(v, "", "  ")
	return string(data)
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
