package grafana

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/kubetest"
	"pisanix.io/pisanix/internal/testenv"
	"pisanix.io/pisanix/metrics"
	"pisanix.io/pisanix/qosd"
)

// family is an exported metric: its label names and who exports it.
type family struct {
	labels map[string]bool
	source string
}

// exported maps metric family names to their labels.
type exported map[string]family

func (e exported) addDescs(source string, descs []*prometheus.Desc) error {
	for _, d := range descs {
		name, labels, err := parseDesc(d)
		if err != nil {
			return err
		}
		set := map[string]bool{}
		for _, l := range labels {
			set[l] = true
		}
		e[name] = family{labels: set, source: source}
	}
	return nil
}

var descRE = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), .*variableLabels: \{([^}]*)\}\}$`)

// parseDesc reads a Desc's name and variable labels from its String, the
// only place client_golang shows them; a format change fails the test.
func parseDesc(d *prometheus.Desc) (string, []string, error) {
	m := descRE.FindStringSubmatch(d.String())
	if m == nil {
		return "", nil, fmt.Errorf("cannot read %s", d)
	}
	name, err := strconv.Unquote(m[1])
	if err != nil {
		return "", nil, fmt.Errorf("cannot read %s: %w", d, err)
	}
	var labels []string
	for _, l := range strings.Split(m[2], ",") {
		if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
			labels = append(labels, l)
		}
	}
	return name, labels, nil
}

// proxyCollectors are the collectors of a metrics.Proxy (the registry its
// admin port serves), found by reflection so that a new one is not missed.
func proxyCollectors(m *metrics.Proxy) []prometheus.Collector {
	var cs []prometheus.Collector
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		if c, ok := f.Interface().(prometheus.Collector); ok {
			if _, isRegistry := c.(*prometheus.Registry); !isRegistry {
				cs = append(cs, c)
			}
		}
	}
	return cs
}

// recorder is a prometheus.Registerer that keeps what is registered.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return false }

// inProcess describes the metrics of the three programs from their own
// collectors: the proxy's metrics.New (scraped below too), the daemon's
// qosd.MetricDescs and the controller's config server metrics. (The daemon
// and the controller need BPF and a kube-apiserver to run; their
// collectors are the ones their /metrics serve.)
func inProcess(t *testing.T) exported {
	t.Helper()
	e := exported{}
	if err := e.addDescs("pisa-proxy", metrics.Describe(proxyCollectors(metrics.New())...)); err != nil {
		t.Fatal(err)
	}
	if err := e.addDescs("pisa-daemon", qosd.MetricDescs()); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	if _, err := configserver.NewMetrics(&rec); err != nil {
		t.Fatal(err)
	}
	if err := e.addDescs("pisa-controller", metrics.Describe(rec.cs...)); err != nil {
		t.Fatal(err)
	}
	return e
}

// dashboard is the part of Grafana's JSON model the test reads.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Datasource any     `json:"datasource"`
	Panels     []panel `json:"panels"`
	Targets    []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// query is one PromQL expression of the dashboard and where it is.
type query struct{ where, expr string }

func loadDashboard(path string) (dashboard, error) {
	var d dashboard
	b, err := os.ReadFile(path)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

func (d dashboard) queries() ([]query, []error) {
	var qs []query
	var errs []error
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				errs = append(errs, fmt.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID))
			}
			ids[p.ID] = p.Title
			if p.Title == "" {
				errs = append(errs, fmt.Errorf("panel %d has no title", p.ID))
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				errs = append(errs, fmt.Errorf("panel %q has no query", p.Title))
			}
			for i, tg := range p.Targets {
				qs = append(qs, query{fmt.Sprintf("panel %q query %c", p.Title, 'A'+i), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := v.Query
		if m, ok := q.(map[string]any); ok {
			q = m["query"]
		}
		s, _ := q.(string)
		qs = append(qs, query{"variable $" + v.Name, s})
	}
	return qs, errs
}

var (
	grafanaRange = regexp.MustCompile(`\$__(rate_interval|interval|range)\b`)
	grafanaVar   = regexp.MustCompile(`\$\{?\w+\}?`)
	labelValues  = regexp.MustCompile(`^label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)$`)
)

// promQL turns a Grafana query into PromQL: durations for the range
// variables, a match-all for the template variables (which stand only in
// label matchers' values), and label_values(series, label) into the series
// and a grouping by the label.
func promQL(expr string) string {
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		return fmt.Sprintf("count by (%s) (%s)", m[2], m[1])
	}
	return grafanaVar.ReplaceAllString(grafanaRange.ReplaceAllString(expr, "5m"), ".*")
}

// baseName maps a histogram's series to its family: x_bucket, x_sum and
// x_count are x's. bucket says whether the series has the le label.
func (e exported) baseName(name string) (string, bool, bool) {
	if _, ok := e[name]; ok {
		return name, false, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if _, ok := e[base]; ok {
				return base, suffix == "_bucket", true
			}
		}
	}
	return "", false, false
}

func (e exported) hasLabel(name, label string) bool {
	base, bucket, ok := e.baseName(name)
	return ok && (e[base].labels[label] || bucket && label == "le")
}

// check parses q and returns what is wrong with it: a parse error, a metric
// no program exports, a label matched or grouped by that the metric lacks.
func (e exported) check(q query) []error {
	expr, err := parser.ParseExpr(promQL(q.expr))
	if err != nil {
		return []error{fmt.Errorf("%s: %q does not parse: %w", q.where, q.expr, err)}
	}
	var errs []error
	used := 0
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			used++
			if n.Name == "" {
				errs = append(errs, fmt.Errorf("%s: a selector without a metric name", q.where))
				return nil
			}
			if _, _, ok := e.baseName(n.Name); !ok {
				errs = append(errs, fmt.Errorf("%s: %s is exported by no program", q.where, n.Name))
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !e.hasLabel(n.Name, m.Name) {
					errs = append(errs, fmt.Errorf("%s: %s has no label %s", q.where, n.Name, m.Name))
				}
			}
		case *parser.AggregateExpr:
			if n.Without {
				break
			}
			var names []string
			parser.Inspect(n.Expr, func(inner parser.Node, _ []parser.Node) error {
				if vs, ok := inner.(*parser.VectorSelector); ok {
					names = append(names, vs.Name)
				}
				return nil
			})
			for _, l := range n.Grouping {
				for _, name := range names {
					if _, _, ok := e.baseName(name); ok && !e.hasLabel(name, l) {
						errs = append(errs, fmt.Errorf("%s: groups by %s, which %s lacks", q.where, l, name))
					}
				}
			}
		}
		return nil
	})
	if used == 0 {
		errs = append(errs, fmt.Errorf("%s: %q selects no metric", q.where, q.expr))
	}
	return errs
}

func dashboardPath(t *testing.T) string {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy", "grafana", "pisanix.json")
}

// Every query of the dashboard parses as PromQL and uses only metrics and
// labels the programs export, as their collectors describe them.
func TestDashboardQueries(t *testing.T) {
	d, err := loadDashboard(dashboardPath(t))
	if err != nil {
		t.Fatal(err)
	}
	qs, errs := d.queries()
	for _, err := range errs {
		t.Error(err)
	}
	if len(qs) < 30 {
		t.Fatalf("%d queries in the dashboard; it lost panels", len(qs))
	}
	e := inProcess(t)
	sources := map[string]bool{}
	for _, q := range qs {
		for _, err := range e.check(q) {
			t.Error(err)
		}
		if expr, err := parser.ParseExpr(promQL(q.expr)); err == nil {
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					if base, _, ok := e.baseName(vs.Name); ok {
						sources[e[base].source] = true
					}
				}
				return nil
			})
		}
	}
	for _, s := range []string{"pisa-proxy", "pisa-daemon", "pisa-controller"} {
		if !sources[s] {
			t.Errorf("no panel shows a metric of %s", s)
		}
	}
	t.Logf("%d queries checked against %d exported metric families", len(qs), len(e))
}

// The checker itself refuses what it should.
func TestDashboardCheckerRefuses(t *testing.T) {
	e := inProcess(t)
	for _, expr := range []string{
		`sum(rate(pisa_proxy_sql_processed_total[$__rate_interval])`,                                 // unbalanced
		`rate(pisa_proxy_no_such_metric_total[5m])`,                                                  // unknown metric
		`sum by (node) (rate(pisa_proxy_sql_processed_total[5m]))`,                                   // label it lacks
		`pisa_proxy_connections_current{reason="x"}`,                                                 // matcher on a label it lacks
		`histogram_quantile(0.9, sum by (le, user) (rate(pisa_proxy_pool_wait_seconds_bucket[5m])))`, // user on the pool histogram
		`label_values(pisa_proxy_sql_processed_total, node)`,                                         // variable on a missing label
		`vector(1)`, // no metric
	} {
		if errs := e.check(query{"test", expr}); len(errs) == 0 {
			t.Errorf("%q passed the check", expr)
		}
	}
	for _, expr := range []string{
		`histogram_quantile(0.99, sum by (domain, le) (rate(pisa_proxy_sql_processed_duration_bucket{domain=~"$domain"}[$__rate_interval])))`,
		`label_values(pisa_proxy_sql_processed_total, domain)`,
		`sum by (app) (rate(pisa_daemon_qos_drops_total[5m]))`,
	} {
		if errs := e.check(query{"test", expr}); len(errs) > 0 {
			t.Errorf("%q refused: %v", expr, errs)
		}
	}
}

// A running pisa-proxy, after serving statements through a real MariaDB,
// exports on its admin port what metrics.New describes, and the series the
// dashboard's traffic, latency, connection and pool panels read, with the
// labels they group by.
func TestRunningProxyExportsDashboardMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pisa-proxy and starts MariaDB")
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "pisa-proxy")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd", "pisa-proxy")).CombinedOutput(); err != nil {
		t.Fatalf("build pisa-proxy: %v\n%s", err, out)
	}
	db := testenv.MariaDB(t)
	listen, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "proxy.toml")
	if err := os.WriteFile(cfg, []byte(testenv.ProxyTOML(admin, listen, "app-secret", db)), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := testenv.StartProcess(bin, []string{"daemon", "-c", cfg}, filepath.Join(t.TempDir(), "proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = proc.Terminate(ctx)
	})

	conn, err := sql.Open("mysql", fmt.Sprintf("app:app-secret@tcp(127.0.0.1:%d)/gotest?timeout=2s", listen))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for conn.PingContext(t.Context()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("pisa-proxy did not accept logins in 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, stmt := range []string{"SELECT 1", "CREATE TEMPORARY TABLE t (a INT)", "INSERT INTO t VALUES (1)", "SELECT a FROM t", "SELECT * FROM no_such_table"} {
		_, _ = conn.ExecContext(t.Context(), stmt)
	}

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", admin))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	described := exported{}
	if err := described.addDescs("pisa-proxy", metrics.Describe(proxyCollectors(metrics.New())...)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, f := range fams {
		if !strings.HasPrefix(name, "pisa_") && !strings.HasPrefix(name, "sql_") {
			continue // Go and process collectors
		}
		names = append(names, name)
		d, ok := described[name]
		if !ok {
			t.Errorf("the running proxy exports %s, which metrics.New does not describe", name)
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if !d.labels[l.GetName()] {
					t.Errorf("%s has label %s on /metrics, not in its description", name, l.GetName())
				}
			}
		}
	}
	sort.Strings(names)
	t.Logf("scraped %d pisa-proxy families: %s", len(names), strings.Join(names, " "))
	// What the dashboard's first rows read, with the values they filter on.
	for _, want := range []struct {
		name   string
		labels map[string]string
	}{
		{"pisa_proxy_sql_processed_total", map[string]string{"domain": "app", "user": "app", "kind": "select", "server": db.Addr(), "result": "ok"}},
		{"pisa_proxy_sql_processed_total", map[string]string{"domain": "app", "result": "error"}},
		{"pisa_proxy_sql_processed_duration", map[string]string{"domain": "app", "kind": "insert"}},
		{"pisa_proxy_connections_current", map[string]string{"domain": "app"}},
		{"pisa_proxy_connections_accepted_total", map[string]string{"domain": "app"}},
		{"pisa_proxy_pool_in_use_connections", map[string]string{"domain": "app", "node": "n1"}},
		{"pisa_proxy_pool_dials_total", map[string]string{"domain": "app", "node": "n1"}},
		{"pisa_proxy_actor_mailbox_depth", nil},
	} {
		f, ok := fams[want.name]
		if !ok {
			t.Errorf("/metrics has no %s", want.name)
			continue
		}
		if !slices.ContainsFunc(f.Metric, func(m *dto.Metric) bool { return hasLabels(m, want.labels) }) {
			var have []string
			for _, m := range f.Metric {
				have = append(have, m.String())
			}
			t.Errorf("/metrics has no %s with %v; it has:\n%s", want.name, want.labels, strings.Join(have, "\n"))
		}
	}
}

// hasLabels says whether m has every label of want with its value.
func hasLabels(m *dto.Metric, want map[string]string) bool {
	for name, value := range want {
		if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == name && l.GetValue() == value }) {
			return false
		}
	}
	return true
}
