package main

import (
	"errors"
	"io"
)

// runSidecar fetches the config from pisa-controller. Wired to the
// controller's config client in the controller issue.
func runSidecar(overrides, io.Writer) error {
	return errors.New("sidecar mode is not available in this build yet: run `pisa-proxy daemon -c <file>`")
}
