package apiserver

import (
	"net/http/httptest"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
)

// TestLogsAreLongRunning: a followed log outlives the request timeout
// and holds no in-flight slot, as a watch does; plain reads do not.
func TestLogsAreLongRunning(t *testing.T) {
	resolver := &genericapirequest.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/apis/skiff.dev/v1alpha1/namespaces/default/instances/web-1/log?follow=true", true},
		{"/apis/skiff.dev/v1alpha1/namespaces/default/instances/web-1/log", true},
		{"/apis/skiff.dev/v1alpha1/namespaces/default/instances?watch=true", true},
		{"/apis/skiff.dev/v1alpha1/namespaces/default/instances/web-1", false},
		{"/apis/skiff.dev/v1alpha1/namespaces/default/instances", false},
		{"/readyz", false},
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		info, err := resolver.NewRequestInfo(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := longRunning(req, info); got != tc.want {
			t.Errorf("GET %s: long-running %v, want %v", tc.path, got, tc.want)
		}
	}
}
