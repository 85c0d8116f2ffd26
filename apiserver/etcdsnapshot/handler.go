package etcdsnapshot

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// APIPath is the admin-only endpoint behind `skiff etcd-snapshot`:
//
//	GET    /skiff/etcd-snapshots             the snapshots, as a JSON list of Info
//	POST   /skiff/etcd-snapshots?name=NAME   take one (NAME defaults to on-demand); its Info
//	DELETE /skiff/etcd-snapshots/FILE        delete one
//
// Like every /skiff/ endpoint but a few, only admins reach it (RBAC on
// non-resource URLs: the admin role's "*").
const APIPath = "/skiff/etcd-snapshots"

// saveTimeout bounds a save, which a client's going away does not cut short.
const saveTimeout = 30 * time.Minute

// Handler serves APIPath for s.
func Handler(s *Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.Trim(strings.TrimPrefix(r.URL.Path, APIPath), "/")
		switch {
		case r.Method == http.MethodGet && name == "":
			list, err := s.List()
			if err != nil {
				fail(w, err)
				return
			}
			if list == nil {
				list = []Info{}
			}
			reply(w, http.StatusOK, list)
		case r.Method == http.MethodPost && name == "":
			n := r.URL.Query().Get("name")
			if n == "" {
				n = OnDemandName
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), saveTimeout)
			defer cancel()
			start := time.Now()
			info, err := s.Save(ctx, n, false)
			if err != nil {
				klog.ErrorS(err, "etcd snapshot failed", "name", n)
				fail(w, err)
				return
			}
			klog.InfoS("saved an etcd snapshot", "path", info.Path, "size", info.Size, "revision", info.Revision, "took", time.Since(start))
			reply(w, http.StatusCreated, info)
		case r.Method == http.MethodDelete && name != "":
			if err := s.Delete(name); err != nil {
				fail(w, err)
				return
			}
			klog.InfoS("deleted an etcd snapshot", "name", name)
			reply(w, http.StatusOK, map[string]string{"deleted": name})
		default:
			fail(w, errMethod)
		}
	})
}

// Unavailable serves APIPath where there are no snapshots to take (an
// external etcd), saying why.
func Unavailable(why string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusNotImplemented, metav1.StatusReasonMethodNotAllowed, why)
	})
}

var errMethod = errors.New("GET " + APIPath + " lists, POST " + APIPath + "?name=NAME saves, DELETE " + APIPath + "/FILE deletes")

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers with a metav1.Status, which clients show as the message.
func fail(w http.ResponseWriter, err error) {
	code, reason := http.StatusInternalServerError, metav1.StatusReasonInternalError
	switch {
	case errors.Is(err, ErrInvalidName):
		code, reason = http.StatusBadRequest, metav1.StatusReasonBadRequest
	case errors.Is(err, ErrNotFound):
		code, reason = http.StatusNotFound, metav1.StatusReasonNotFound
	case errors.Is(err, ErrExists):
		code, reason = http.StatusConflict, metav1.StatusReasonAlreadyExists
	case errors.Is(err, errMethod):
		code, reason = http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed
	}
	writeStatus(w, code, reason, err.Error())
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	reply(w, code, metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}
