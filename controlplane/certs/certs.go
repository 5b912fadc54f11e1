// Package certs bootstraps the webhook's TLS: a self-signed CA and a serving
// certificate for the controller's Service, kept in a Secret (so replicas
// and restarts share them), written to the webhook server's cert dir, and the
// CA put into the MutatingWebhookConfiguration's caBundle.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Key names in the Secret and the cert dir.
const (
	CAKey      = "ca.crt"
	CertKey    = "tls.crt"
	PrivKeyKey = "tls.key"

	validity    = 10 * 365 * 24 * time.Hour
	renewBefore = 30 * 24 * time.Hour
)

// Bootstrap ensures the webhook certificates.
type Bootstrap struct {
	// Client must work before the manager's cache starts (an uncached client).
	Client            client.Client
	Namespace         string // of the controller, the Service and the Secret
	SecretName        string
	ServiceName       string
	WebhookConfigName string // MutatingWebhookConfiguration to fill caBundle in
	// CAConfigMap, when set, is a ConfigMap (in Namespace) given the CA
	// under ca.crt, for pisa-daemon to verify the config server with.
	CAConfigMap string
	CertDir     string
	Log         *slog.Logger
}

// Bundle is a CA and a serving pair, PEM.
type Bundle struct{ CA, Cert, Key []byte }

// Ensure loads or creates the certificates, writes them to CertDir and
// patches caBundle.
func (b *Bootstrap) Ensure(ctx context.Context) (*Bundle, error) {
	bundle, err := b.ensureSecret(ctx)
	if err != nil {
		return nil, err
	}
	if err := writeFiles(b.CertDir, bundle); err != nil {
		return nil, err
	}
	if err := b.PatchCABundle(ctx, bundle.CA); err != nil {
		return nil, err
	}
	if err := b.publishCA(ctx, bundle.CA); err != nil {
		return nil, err
	}
	return bundle, nil
}

// publishCA writes the CA (public) to CAConfigMap.
func (b *Bootstrap) publishCA(ctx context.Context, ca []byte) error {
	if b.CAConfigMap == "" {
		return nil
	}
	cm := &corev1.ConfigMap{}
	key := client.ObjectKey{Namespace: b.Namespace, Name: b.CAConfigMap}
	err := b.Client.Get(ctx, key, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: b.Namespace, Name: b.CAConfigMap},
			Data: map[string]string{CAKey: string(ca)}}
		if err := b.Client.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CA ConfigMap %s: %w", key, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get CA ConfigMap %s: %w", key, err)
	case cm.Data[CAKey] == string(ca):
		return nil
	}
	cm.Data = map[string]string{CAKey: string(ca)}
	if err := b.Client.Update(ctx, cm); err != nil {
		return fmt.Errorf("update CA ConfigMap %s: %w", key, err)
	}
	return nil
}

// DNSNames the serving certificate covers.
func (b *Bootstrap) DNSNames() []string {
	s, ns := b.ServiceName, b.Namespace
	return []string{s, s + "." + ns, s + "." + ns + ".svc", s + "." + ns + ".svc.cluster.local"}
}

func (b *Bootstrap) ensureSecret(ctx context.Context) (*Bundle, error) {
	sec := &corev1.Secret{}
	err := b.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.SecretName}, sec)
	switch {
	case err == nil:
		bundle := &Bundle{CA: sec.Data[CAKey], Cert: sec.Data[CertKey], Key: sec.Data[PrivKeyKey]}
		if valid(bundle, b.DNSNames(), time.Now()) {
			return bundle, nil
		}
		b.Log.Info("webhook certificate missing, expiring or for other names; renewing", "secret", b.SecretName)
		if bundle, err = Generate(b.DNSNames(), time.Now()); err != nil {
			return nil, err
		}
		sec.Data = map[string][]byte{CAKey: bundle.CA, CertKey: bundle.Cert, PrivKeyKey: bundle.Key}
		if err := b.Client.Update(ctx, sec); err != nil {
			return nil, fmt.Errorf("update webhook cert secret %s/%s: %w", b.Namespace, b.SecretName, err)
		}
		return bundle, nil
	case apierrors.IsNotFound(err):
		bundle, err := Generate(b.DNSNames(), time.Now())
		if err != nil {
			return nil, err
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: b.Namespace, Name: b.SecretName},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{CAKey: bundle.CA, CertKey: bundle.Cert, PrivKeyKey: bundle.Key},
		}
		if err := b.Client.Create(ctx, sec); err != nil {
			if apierrors.IsAlreadyExists(err) { // another replica won the race
				return b.ensureSecret(ctx)
			}
			return nil, fmt.Errorf("create webhook cert secret %s/%s: %w", b.Namespace, b.SecretName, err)
		}
		b.Log.Info("webhook certificate created", "secret", b.SecretName, "names", b.DNSNames())
		return bundle, nil
	default:
		return nil, fmt.Errorf("get webhook cert secret %s/%s: %w", b.Namespace, b.SecretName, err)
	}
}

// PatchCABundle sets caBundle on every webhook of the configuration.
func (b *Bootstrap) PatchCABundle(ctx context.Context, ca []byte) error {
	if b.WebhookConfigName == "" {
		return nil
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := b.Client.Get(ctx, client.ObjectKey{Name: b.WebhookConfigName}, cfg); err != nil {
		return fmt.Errorf("get MutatingWebhookConfiguration %s: %w", b.WebhookConfigName, err)
	}
	base := cfg.DeepCopy()
	changed := false
	for i := range cfg.Webhooks {
		if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, ca) {
			cfg.Webhooks[i].ClientConfig.CABundle = ca
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := b.Client.Patch(ctx, cfg, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: %w", b.WebhookConfigName, err)
	}
	b.Log.Info("webhook caBundle updated", "config", b.WebhookConfigName)
	return nil
}

// Keep re-applies caBundle every interval (a re-applied manifest may have
// cleared it) until ctx ends. It is a controller-runtime Runnable body.
func (b *Bootstrap) Keep(ctx context.Context, ca []byte, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := b.PatchCABundle(ctx, ca); err != nil {
				b.Log.Warn("keeping webhook caBundle", "err", err)
			}
		}
	}
}

// Generate makes a CA and a serving certificate for names, valid from now.
func Generate(names []string, now time.Time) (*Bundle, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pisa-controller-webhook-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode serving key: %w", err)
	}
	return &Bundle{
		CA:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// valid reports whether the bundle's serving cert chains to its CA, covers
// names and is not about to expire.
func valid(b *Bundle, names []string, now time.Time) bool {
	cb, _ := pem.Decode(b.Cert)
	ab, _ := pem.Decode(b.CA)
	if cb == nil || ab == nil || len(b.Key) == 0 {
		return false
	}
	cert, err1 := x509.ParseCertificate(cb.Bytes)
	ca, err2 := x509.ParseCertificate(ab.Bytes)
	if err := errors.Join(err1, err2); err != nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, n := range names {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, CurrentTime: now.Add(renewBefore)}); err != nil {
			return false
		}
	}
	return true
}

func writeFiles(dir string, b *Bundle) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("webhook cert dir: %w", err)
	}
	for name, data := range map[string][]byte{CAKey: b.CA, CertKey: b.Cert, PrivKeyKey: b.Key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("write webhook cert: %w", err)
		}
	}
	return nil
}
