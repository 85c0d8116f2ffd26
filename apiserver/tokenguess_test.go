package apiserver

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestJoinTokenGuessesAreLimited: after ten wrong join tokens from one
// address, its bearer requests get 429 with Retry-After (the right token
// too: guessing must stop, not go on until it hits), while clients with
// keys are untouched.
func TestJoinTokenGuessesAreLimited(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	anon := anonymousClient(t, ts)
	token, err := os.ReadFile(ts.srv.dir.file(JoinTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	nodes := ts.srv.URL() + "/apis/skiff.dev/v1alpha1/nodes/n1"
	try := func(tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, nodes, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := anon.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range guessFailures {
		if resp := try("skiff-join." + strconv.Itoa(i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, resp.StatusCode)
		}
	}
	resp := try("skiff-join.one-more")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("guess %d: %d, want 429", guessFailures+1, resp.StatusCode)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > int(guessEvery.Seconds()) {
		t.Errorf("Retry-After %q, want 1-%d seconds", resp.Header.Get("Retry-After"), int(guessEvery.Seconds()))
	}
	if resp := try(strings.TrimSpace(string(token))); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right token while blocked: %d, want 429", resp.StatusCode)
	}
	var list skiffv1alpha1.NodeList
	if err := ts.client.List(context.Background(), &list); err != nil {
		t.Errorf("a client with a key after the guesses: %v", err)
	}
}
