//go:build !faultinject

package actors

func injectFault(any) {}
