package controller_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/configclient"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/controller"
)

// A replica that is not the leader serves the current proxy and daemon
// configuration too (proxies and daemons reach any replica through the
// Service); before its first reconcile it answers 503 for the daemon
// config, never an empty one.
func TestFollowerServesConfig(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const leaseName = "pisa-follower-test"
	holdLease(t, ctx, leaseName)

	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: testScheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		LeaderElection: true, LeaderElectionID: leaseName, LeaderElectionNamespace: "default",
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	store := configserver.NewStore()
	srv := httptest.NewServer(configserver.Handler(store, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + configserver.DaemonPath())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("daemon config before the first reconcile: %s, want 503", resp.Status)
	}
	if err := controller.Setup(mgr, controller.Options{Store: store, Log: testLog, DaemonGlobal: config.DaemonGlobal{EgressDevice: "eth0"}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	ns := newNamespace(t, "follower")
	sel := map[string]string{"app": "follow"}
	for _, o := range []client.Object{
		&v1alpha1.TrafficStrategy{
			ObjectMeta: metav1.ObjectMeta{Name: "follow", Namespace: ns},
			Spec: v1alpha1.TrafficStrategySpec{Selector: &metav1.LabelSelector{MatchLabels: sel},
				LoadBalance: &v1alpha1.LoadBalance{SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{Kind: v1alpha1.LoadBalanceRandom}}},
		},
		newEndpoint(ns, "followdb", sel),
		&v1alpha1.VirtualDatabase{
			ObjectMeta: metav1.ObjectMeta{Name: "follow", Namespace: ns},
			Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.Service{{
				Name: "mysql", TrafficStrategy: "follow", DatabaseMySQL: &v1alpha1.DatabaseMySQL{User: "app"},
			}}},
		},
	} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, timeout, func() error {
		c, _, err := configclient.Fetch(ctx, srv.URL, ns, "follow")
		if err != nil {
			return err
		}
		if len(c.MySQL.Node) != 1 {
			return errors.New("the follower serves no backend node")
		}
		_, err = httpGet(srv.URL + configserver.DaemonPath())
		return err
	})
	select {
	case <-mgr.Elected():
		t.Fatal("the test manager became leader: the lease was not held")
	default:
	}
}

// holdLease makes another holder own the named lease for an hour.
func holdLease(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("someone-else"), LeaseDurationSeconds: ptr.To(int32(3600)),
			AcquireTime: &now, RenewTime: &now},
	}
	err := k8s.Create(ctx, lease)
	if apierrors.IsAlreadyExists(err) { // an earlier -count run
		old := &coordinationv1.Lease{}
		if err = k8s.Get(ctx, client.ObjectKeyFromObject(lease), old); err == nil {
			old.Spec = lease.Spec
			err = k8s.Update(ctx, old)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}
