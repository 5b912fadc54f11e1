package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Size of the QPS plots: 576 x 384 pixels at vg's default 96 dpi.
const (
	plotWidth  = 6 * vg.Inch
	plotHeight = 4 * vg.Inch
)

// plotLink is one written plot: the sysbench test and the PNG's file name,
// which sits next to the report and so is also its relative link.
type plotLink struct {
	test, file string
}

// qpsSeries is one target's line: QPS per thread count.
type qpsSeries struct {
	target string
	color  int // index into plotutil's palette: a target keeps its colour across plots
	points plotter.XYs
}

// plotFileName is the PNG name of a test; a test given as a path to a Lua
// script keeps only characters safe in a file name and a markdown link.
func plotFileName(test string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, strings.TrimSuffix(filepath.Base(test), ".lua"))
	return "qps-" + clean + ".png"
}

// writePlots renders one QPS-against-threads PNG per sysbench test into
// dir and returns the ones written. A plot that fails is logged and left
// out: the table is the result, the plot a view of it.
func writePlots(dir string, cfg config, targets []*target, results []result, log *slog.Logger) []plotLink {
	var links []plotLink
	for _, test := range cfg.tests {
		series := qpsByTarget(test, targets, results)
		if len(series) == 0 {
			continue
		}
		link := plotLink{test: test, file: plotFileName(test)}
		title := fmt.Sprintf("sysbench %s, --db-ps-mode=%s", test, psMode(cfg))
		path := filepath.Join(dir, link.file)
		if err := renderQPSPlot(path, title, series); err != nil {
			log.Warn("QPS plot not written", "test", test, "err", err)
			continue
		}
		log.Info("QPS plot written", "test", test, "path", path)
		links = append(links, link)
	}
	return links
}

// qpsByTarget collects the successful cases of one test, one series per
// target in the order of the run, sorted by threads.
func qpsByTarget(test string, targets []*target, results []result) []qpsSeries {
	var out []qpsSeries
	for i, t := range targets {
		s := qpsSeries{target: t.name, color: i}
		for _, r := range results {
			if r.target == t.name && r.test == test && r.err == nil {
				s.points = append(s.points, plotter.XY{X: float64(r.threads), Y: r.qps})
			}
		}
		if len(s.points) == 0 {
			continue
		}
		slices.SortFunc(s.points, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		out = append(out, s)
	}
	return out
}

// renderQPSPlot draws the series on a logarithmic threads axis (so that
// 1, 8 and 32 are not crowded at the left) with a tick at each thread
// count, QPS from 0, and saves a PNG at path.
func renderQPSPlot(path, title string, series []qpsSeries) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "threads"
	p.Y.Label.Text = "QPS"
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	var threads []float64
	for _, s := range series {
		line, points, err := plotter.NewLinePoints(s.points)
		if err != nil {
			return fmt.Errorf("plotting %s: %w", s.target, err)
		}
		line.Color, points.Color, points.Shape = plotutil.Color(s.color), plotutil.Color(s.color), plotutil.Shape(s.color)
		p.Add(line, points)
		p.Legend.Add(s.target, line, points)
		for _, xy := range s.points {
			threads = append(threads, xy.X)
		}
	}
	slices.Sort(threads)
	threads = slices.Compact(threads)
	ticks := make(plot.ConstantTicks, len(threads))
	for i, n := range threads {
		ticks[i] = plot.Tick{Value: n, Label: strconv.FormatFloat(n, 'f', -1, 64)}
	}
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, ticks
	// Set after Add, which widens the ranges to the data: a margin keeps
	// the end points' glyphs inside, and a single thread count still gives
	// the log scale a range that is not empty.
	p.X.Min, p.X.Max = threads[0]/1.25, threads[len(threads)-1]*1.25
	p.Y.Min, p.Y.Max = 0, p.Y.Max*1.1
	p.Y.Tick.Marker = qpsTicks{}
	if err := p.Save(plotWidth, plotHeight, path); err != nil {
		return fmt.Errorf("saving plot %s: %w", path, err)
	}
	return nil
}

// qpsTicks labels the QPS axis at round steps (1, 2 or 5 x 10^k, five to
// ten of them) as whole numbers: gonum's default ticks label only two
// values here, with two decimals.
type qpsTicks struct{}

func (qpsTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'f', 0, 64)}}
	}
	step := math.Pow(10, math.Floor(math.Log10(hi-lo)))
	for _, m := range []float64{0.1, 0.2, 0.5, 1} {
		if (hi-lo)/(step*m) <= 10 {
			step *= m
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
	}
	return ticks
}
