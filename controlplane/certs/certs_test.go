package certs

import (
	"testing"
	"time"
)

func TestGenerateValid(t *testing.T) {
	names := []string{"svc", "svc.ns", "svc.ns.svc"}
	now := time.Now()
	b, err := Generate(names, now)
	if err != nil {
		t.Fatal(err)
	}
	if !valid(b, names, now) {
		t.Fatal("fresh bundle is not valid")
	}
	if valid(b, []string{"other.ns.svc"}, now) {
		t.Fatal("bundle valid for a name it does not cover")
	}
	if valid(b, names, now.Add(validity)) {
		t.Fatal("bundle valid at its expiry")
	}
	other, _ := Generate(names, now)
	if valid(&Bundle{CA: other.CA, Cert: b.Cert, Key: b.Key}, names, now) {
		t.Fatal("bundle valid against a foreign CA")
	}
}
