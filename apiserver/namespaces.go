package apiserver

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
)

// namespaceREST serves namespaces. skiff refuses to delete a namespace
// that still holds objects, rather than cascading: deleting a namespace
// never destroys running Workloads as a side effect. The default and
// skiff-system namespaces cannot be deleted at all.
type namespaceREST struct {
	*REST
	// contents are the stores of every namespaced kind, to check emptiness.
	contents []*REST
}

func (r *namespaceREST) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	for _, p := range r.kind.Protected {
		if p == name {
			return nil, false, apierrors.NewForbidden(r.kind.GroupResource(), name, fmt.Errorf("namespace %q is part of skiff and cannot be deleted", name))
		}
	}
	held, err := r.heldKinds(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if len(held) > 0 {
		return nil, false, apierrors.NewConflict(r.kind.GroupResource(), name, fmt.Errorf(
			"namespace %q is not empty: it still holds %s; delete them first (skiff does not cascade namespace deletion)",
			name, strings.Join(held, ", ")))
	}
	return r.REST.Delete(ctx, name, deleteValidation, options)
}

// DeleteCollection is refused: each namespace must pass the emptiness check.
func (r *namespaceREST) DeleteCollection(ctx context.Context, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions, listOptions *metainternalversion.ListOptions) (runtime.Object, error) {
	return nil, apierrors.NewMethodNotSupported(r.kind.GroupResource(), "deletecollection")
}

// heldKinds names the kinds that have objects in the namespace ("2 workloads").
func (r *namespaceREST) heldKinds(ctx context.Context, ns string) ([]string, error) {
	nsCtx := genericapirequest.WithNamespace(ctx, ns)
	var held []string
	for _, c := range r.contents {
		list, err := c.List(nsCtx, &metainternalversion.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("namespace %q: list %s: %w", ns, c.kind.Plural, err)
		}
		if n := meta.LenList(list); n > 0 {
			held = append(held, fmt.Sprintf("%d %s", n, c.kind.Plural))
		}
	}
	sort.Strings(held)
	return held, nil
}

// namespaceChecker answers whether a namespace exists, from the watch cache
// first and from etcd when the cache has not seen it yet.
type namespaceChecker struct {
	store *REST
}

func (c namespaceChecker) exists(ctx context.Context, name string) error {
	ctx = genericapirequest.WithNamespace(ctx, metav1.NamespaceNone)
	_, err := c.store.Get(ctx, name, &metav1.GetOptions{ResourceVersion: "0"})
	if apierrors.IsNotFound(err) {
		_, err = c.store.Get(ctx, name, &metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return apierrors.NewNotFound(corev1.Resource("namespaces"), name)
	}
	return err
}
