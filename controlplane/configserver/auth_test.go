package configserver

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// countingReviewer accepts every token as one pod's and counts the
// reviews; the real TokenReview path is tested against a real API server
// in cmd/pisa-controller (TestConfigChannelAuth).
type countingReviewer struct{ n int }

func (c *countingReviewer) Review(context.Context, string) (Identity, error) {
	c.n++
	return Identity{Namespace: "ns", ServiceAccount: "app", PodName: "app-1", PodUID: "u"}, nil
}

func jwt(exp time.Time) string {
	payload := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"exp":%d}`, exp.Unix()))
	return "e30." + payload + ".sig"
}

// A reviewed token is trusted until the cache period or its own expiry,
// whichever comes first; the pod's application is looked up once.
func TestAuthCache(t *testing.T) {
	rev := &countingReviewer{}
	lookups := 0
	a := &Auth{Reviewer: rev, CacheTTL: time.Hour, PodApp: func(context.Context, string, string, string) (string, error) {
		lookups++
		return "app", nil
	}}
	store := NewStore()
	if _, err := store.SetProxy(Key{"ns", "app"}, cfg("u")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(store, nil, WithAuth(a)))
	defer srv.Close()
	get := func(tok string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+ProxyPath("ns", "app"), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	long := jwt(time.Now().Add(time.Hour))
	for range 3 {
		if code := get(long); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
	}
	if rev.n != 1 || lookups != 1 {
		t.Fatalf("%d reviews and %d pod lookups for one token; want 1 and 1", rev.n, lookups)
	}
	// A token that expires within the cache period is reviewed again
	// once it has expired (here: already).
	short := jwt(time.Now().Add(-time.Second))
	get(short)
	get(short)
	if rev.n != 3 {
		t.Fatalf("%d reviews; an expired token was trusted from the cache", rev.n)
	}
	if code := get(""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
}
