package translate

import (
	"fmt"
	"slices"
	"strings"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
)

// Namespace holds the objects of one namespace the daemon config depends on.
type Namespace struct {
	VirtualDatabases []v1alpha1.VirtualDatabase
	Strategies       map[string]*v1alpha1.TrafficStrategy
	Endpoints        []v1alpha1.DatabaseEndpoint
	Claims           map[string]*v1alpha1.QoSClaim
}

// ClaimUse says which applications use a QoSClaim and whether it is valid.
type ClaimUse struct {
	Apps    []string
	Problem *Problem
}

// DaemonConfig builds the node daemon's configuration: one app per
// VirtualDatabase that has a service with a qosClaim, one service per such
// VirtualDatabase service, its endpoints the DatabaseEndpoints the service's
// strategy selects. App names are the VirtualDatabase names, qualified with
// the namespace ("ns/name") when the same name exists in several namespaces.
// It also reports, per claim ("ns/name"), who uses it and whether its rates
// are valid; services whose claim is missing or invalid are left out.
func DaemonConfig(global config.DaemonGlobal, namespaces map[string]*Namespace) (*config.DaemonConfig, map[string]*ClaimUse) {
	out := &config.DaemonConfig{Global: global, App: []config.QoSApp{}}
	uses := map[string]*ClaimUse{}
	nsNames := make([]string, 0, len(namespaces))
	count := map[string]int{}
	for ns, n := range namespaces {
		nsNames = append(nsNames, ns)
		for _, v := range n.VirtualDatabases {
			count[v.Name]++
		}
		for name, c := range n.Claims {
			use := &ClaimUse{}
			if _, _, err := qosGroup(c).Rates(); err != nil {
				use.Problem = problem(v1alpha1.ReasonInvalidConfig, "spec.trafficQoS.qos_group.%v", err)
			}
			uses[ns+"/"+name] = use
		}
	}
	slices.Sort(nsNames)
	for _, ns := range nsNames {
		n := namespaces[ns]
		vdbs := slices.Clone(n.VirtualDatabases)
		slices.SortFunc(vdbs, func(a, b v1alpha1.VirtualDatabase) int { return strings.Compare(a.Name, b.Name) })
		for _, vdb := range vdbs {
			appName := vdb.Name
			if count[vdb.Name] > 1 {
				appName = ns + "/" + vdb.Name
			}
			app := config.QoSApp{Name: appName}
			for _, svc := range vdb.Spec.Services {
				if svc.QoSClaim == "" {
					continue
				}
				claim, use := n.Claims[svc.QoSClaim], uses[ns+"/"+svc.QoSClaim]
				if claim == nil || use.Problem != nil {
					continue
				}
				use.Apps = append(use.Apps, appName)
				g := qosGroup(claim)
				qs := config.QoSService{Name: svc.Name, QoSGroup: &g}
				if ts := n.Strategies[svc.TrafficStrategy]; ts != nil {
					eps, err := SelectEndpoints(ts, n.Endpoints)
					if err == nil {
						for _, ep := range eps {
							if m := ep.Spec.Database.MySQL; m != nil {
								qs.Endpoints = append(qs.Endpoints, config.QoSEndpoint{IP: m.Host, Port: int(m.Port)})
							}
						}
					}
				}
				if len(qs.Endpoints) == 0 {
					continue // nothing to classify yet
				}
				app.Service = append(app.Service, qs)
			}
			if len(app.Service) > 0 {
				out.App = append(out.App, app)
			}
		}
	}
	return out, uses
}

func qosGroup(c *v1alpha1.QoSClaim) config.QoSGroup {
	return config.QoSGroup{Rate: string(c.Spec.TrafficQoS.QoSGroup.Rate), Ceil: string(c.Spec.TrafficQoS.QoSGroup.Ceil)}
}

// String describes a claim's use for its status message.
func (u *ClaimUse) String() string {
	if len(u.Apps) == 0 {
		return "not used by any VirtualDatabase service"
	}
	return fmt.Sprintf("used by %s", strings.Join(u.Apps, ", "))
}
