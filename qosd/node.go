package qosd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// nodeEnv resolves config names on the node: interfaces through a netlink
// handle (bound to one network namespace), hosts through DNS, cgroup paths
// through the cgroup v2 file system.
type nodeEnv struct {
	nl         *netlink.Handle
	cgroupRoot string // cgroup2 mount point; "" finds it in /proc/self/mountinfo
}

func (e nodeEnv) linkIndex(name string) (int, error) {
	link, err := e.nl.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0, errors.New("no such interface on this node")
		}
		return 0, fmt.Errorf("look up interface: %w", err)
	}
	if t := link.Attrs().EncapType; t != "ether" {
		return 0, fmt.Errorf("link type %q is not supported (Ethernet-like interfaces only)", t)
	}
	return link.Attrs().Index, nil
}

func (e nodeEnv) lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// cgroupID returns the cgroup v2 id (the directory's inode number) of path,
// which is absolute under the cgroup2 mount or relative to it.
func (e nodeEnv) cgroupID(path string) (uint64, error) {
	root := e.cgroupRoot
	if root == "" {
		var err error
		if root, err = cgroup2Mount(); err != nil {
			return 0, err
		}
	}
	full := path
	if !strings.HasPrefix(path, root+"/") && path != root {
		full = filepath.Join(root, path)
	}
	fi, err := os.Stat(full)
	if err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.IsDir() {
		return 0, fmt.Errorf("cgroup %s: not a cgroup directory", full)
	}
	return st.Ino, nil
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return fields[4], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	return "", errors.New("no cgroup2 file system is mounted (cgroup rules need cgroup v2)")
}
