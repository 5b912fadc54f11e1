package config

import (
	"fmt"
	"net/netip"
)

// ParseNetwork reads an entry of proxy_protocol_networks: "*" (every
// address), a CIDR or one address.
func ParseNetwork(s string) ([]netip.Prefix, error) {
	if s == "*" {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil
	}
	p, err := ParseHost(s)
	if err != nil {
		return nil, fmt.Errorf("%w, nor \"*\"", err)
	}
	return []netip.Prefix{p}, nil
}
