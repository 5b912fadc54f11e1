// Package bpf holds pisa-daemon's eBPF traffic classifier (qos.c) and the
// Go bindings bpf2go generated for it. The generated qos_bpfel.go and
// qos_bpfel.o are committed so building needs no clang; `make generate`
// (go generate ./...) rebuilds them with clang and libbpf-dev.
package bpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -go-package bpf -type rule_key -type rule_val -type class_counters Qos qos.c -- -I./include -O2 -g -Wall -Werror
