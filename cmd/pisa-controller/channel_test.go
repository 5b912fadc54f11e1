package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"pisanix.io/pisanix/controlplane/certs"
	"pisanix.io/pisanix/controlplane/configclient"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/webhook"
)

// workload creates a ServiceAccount (when missing) and a pod of app running
// as it, as a Deployment's pod would be after injection.
func (c *cluster) workload(t *testing.T, ns, sa, pod, app string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if err := c.admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod, Annotations: map[string]string{webhook.AppAnnotation: app}},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	if err := c.admin.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// token asks the API server for sa's token for audience, bound to pod
// when one is given, as the kubelet does for a projected volume.
func (c *cluster) token(t *testing.T, ns, sa string, pod *corev1.Pod, audience string) string {
	t.Helper()
	ttl := int64(600) // the shortest lifetime the API server grants
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &ttl}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	acct := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}
	if err := c.admin.SubResource("token").Create(context.Background(), acct, tr); err != nil {
		t.Fatalf("token request for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

// ca is the controller's CA, as pisa-daemon reads it from its ConfigMap.
func (c *cluster) ca(t *testing.T) []byte {
	t.Helper()
	var ca []byte
	poll(t, 30*time.Second, func() error {
		if err := c.running(); err != nil {
			return err
		}
		cm := &corev1.ConfigMap{}
		if err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: "pisa-system", Name: "pisa-controller-ca"}, cm); err != nil {
			return err
		}
		ca = []byte(cm.Data[certs.CAKey])
		return nil
	})
	return ca
}

// credentials are what an injected sidecar has: the CA, a token file and
// the Service's name to check in the certificate.
func (c *cluster) credentials(t *testing.T, token string) configclient.Credentials {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return configclient.Credentials{TokenFile: file, CA: c.ca(t), ServerName: "pisa-controller.pisa-system.svc"}
}

// get does one request to the config server over TLS with token (none
// when empty) and returns the status and body.
func (c *cluster) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca(t))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "pisa-controller.pisa-system.svc"}}}
	var status int
	var body string
	poll(t, 30*time.Second, func() error {
		req, _ := http.NewRequest(http.MethodGet, "https://"+c.configAddr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err // the server may still be starting
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		status, body = resp.StatusCode, string(b)
		return nil
	})
	return status, body
}

// The config channel: a proxy with its pod's projected token gets its own
// application's configuration over TLS, and nothing else; other
// workloads', other namespaces', expired, foreign-audience, unbound and
// missing tokens are refused with 401 or 403 and a message saying why;
// pisa-daemon's ServiceAccount alone reads the daemon configuration.
func TestConfigChannelAuth(t *testing.T) {
	c := startController(t)
	ctx := context.Background()
	root, _ := filepath.Abs("../..")
	applyFile(t, c.admin, filepath.Join(root, "deploy", "examples", "socks-shop.yaml"))
	if err := c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}); err != nil {
		t.Fatal(err)
	}
	catalogue := c.workload(t, "default", "catalogue", "catalogue-7d4b9-x2x9z", "catalogue")
	orders := c.workload(t, "default", "orders", "orders-5c6f8-k2m4n", "orders")
	stranger := c.workload(t, "other", "catalogue", "catalogue-1a2b3-q8w7e", "catalogue")
	path := configserver.ProxyPath("default", "catalogue")

	// The real client, with what the sidecar has, gets the configuration.
	creds := c.credentials(t, c.token(t, "default", "catalogue", catalogue, configserver.DefaultAudience))
	hc, err := creds.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, func() error {
		cfg, _, err := configclient.Fetch(ctx, "https://"+c.configAddr, "default", "catalogue", configclient.WithHTTPClient(hc))
		if err != nil {
			return err
		}
		if cfg.Proxy.Config[0].Name == "" {
			return errors.New("empty config")
		}
		return nil
	})
	// Without TLS the channel does not answer with a configuration.
	if _, _, err := configclient.Fetch(ctx, "http://"+c.configAddr, "default", "catalogue", configclient.WithHTTPClient(hc)); err == nil {
		t.Fatal("plain http served a configuration")
	}

	signed := c.signer(t)
	for _, tc := range []struct {
		name, token, path string
		status            int
		why               string
	}{
		{"own app", c.token(t, "default", "catalogue", catalogue, configserver.DefaultAudience), path, http.StatusOK, `"name"`},
		{"no token", "", path, http.StatusUnauthorized, "no bearer token"},
		{"garbage", "not-a-token", path, http.StatusUnauthorized, "token not accepted"},
		{"API server audience", c.token(t, "default", "catalogue", catalogue, "https://kubernetes.default.svc"), path, http.StatusUnauthorized, "token not accepted"},
		{"another workload", c.token(t, "default", "orders", orders, configserver.DefaultAudience), path, http.StatusForbidden, `belongs to application \"orders\"`},
		{"another namespace", c.token(t, "other", "catalogue", stranger, configserver.DefaultAudience), path, http.StatusForbidden, `in namespace \"other\"`},
		{"not bound to a pod", c.token(t, "default", "catalogue", nil, configserver.DefaultAudience), path, http.StatusForbidden, "not bound to a pod"},
		// The same forged claims, signed with the API server's own key:
		// accepted while valid, refused once expired.
		{"signed, valid", signed(catalogue, time.Now().Add(10*time.Minute)), path, http.StatusOK, `"name"`},
		{"signed, expired", signed(catalogue, time.Now().Add(-time.Minute)), path, http.StatusUnauthorized, "token not accepted"},
		{"proxy asks for the daemon's", c.token(t, "default", "catalogue", catalogue, configserver.DefaultAudience), configserver.DaemonPath(), http.StatusForbidden, "only system:serviceaccount:pisa-system:pisa-daemon"},
		{"daemon", c.token(t, "pisa-system", "pisa-daemon", nil, configserver.DefaultAudience), configserver.DaemonPath(), http.StatusOK, "{"},
	} {
		status, body := c.get(t, tc.path, tc.token)
		if status != tc.status || !strings.Contains(body, tc.why) {
			t.Errorf("%s: %d %s; want %d and %q", tc.name, status, body, tc.status, tc.why)
		}
		if tc.status != http.StatusOK && strings.Contains(body, "password") {
			t.Errorf("%s: refused answer carries a configuration: %s", tc.name, body)
		}
	}

	// A token whose pod is gone is refused (the API server checks the binding).
	gone := c.workload(t, "default", "catalogue", "catalogue-7d4b9-gone1", "catalogue")
	tok := c.token(t, "default", "catalogue", gone, configserver.DefaultAudience)
	if err := c.admin.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if status, body := c.get(t, path, tok); status != http.StatusUnauthorized {
		t.Errorf("token of a deleted pod: %d %s", status, body)
	}
}

// signer returns a function minting ServiceAccount tokens for pod with
// the API server's own signing key (envtest keeps it in its cert dir), so
// that a test can make an expired token without waiting for one.
func (c *cluster) signer(t *testing.T) func(pod *corev1.Pod, exp time.Time) string {
	t.Helper()
	der, err := os.ReadFile(filepath.Join(c.env.ControlPlane.APIServer.CertDir, "sa-signer.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(der)
	if block == nil {
		t.Fatal("sa-signer.key: no PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("sa-signer.key is a %T, not ECDSA", k)
	}
	issuer := c.env.ControlPlane.APIServer.SecureServing.URL("https", "/").String()
	return func(pod *corev1.Pod, exp time.Time) string {
		sa := &corev1.ServiceAccount{}
		if err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: pod.Namespace, Name: pod.Spec.ServiceAccountName}, sa); err != nil {
			t.Fatal(err)
		}
		claims := map[string]any{
			"iss": issuer, "aud": []string{configserver.DefaultAudience},
			"sub": "system:serviceaccount:" + pod.Namespace + ":" + sa.Name,
			"iat": exp.Add(-10 * time.Minute).Unix(), "nbf": exp.Add(-10 * time.Minute).Unix(), "exp": exp.Unix(),
			"kubernetes.io": map[string]any{
				"namespace":      pod.Namespace,
				"serviceaccount": map[string]string{"name": sa.Name, "uid": string(sa.UID)},
				"pod":            map[string]string{"name": pod.Name, "uid": string(pod.UID)},
			},
		}
		return es256(t, key, claims)
	}
}

func es256(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}
