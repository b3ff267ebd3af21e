package main

import (
	"bytes"
	"image/color"
	"math"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The report's charts, drawn with gonum.org/v1/plot as SVG (fonts named,
// not embedded, so that a chart stays a few KiB).

var palette = []color.Color{
	color.RGBA{0x4e, 0x79, 0xa7, 0xff}, color.RGBA{0xe1, 0x57, 0x59, 0xff}, color.RGBA{0xf2, 0x8e, 0x2b, 0xff},
	color.RGBA{0x59, 0xa1, 0x4f, 0xff}, color.RGBA{0xb0, 0x7a, 0xa1, 0xff}, color.RGBA{0x76, 0xb7, 0xb2, 0xff},
	color.RGBA{0x9c, 0x75, 0x5f, 0xff},
}

// svgOf draws into a w×h SVG canvas with draw and returns the document.
func svgOf(w, h vg.Length, fill func(dc draw.Canvas)) string {
	c := vgsvg.NewWith(vgsvg.UseWH(w, h), vgsvg.EmbedFonts(false))
	fill(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "" // writing to a bytes.Buffer does not fail
	}
	return b.String()
}

// rangeOf is a figure's min–max as distances from its median.
func rangeOf(f figure) struct{ Low, High float64 } {
	return struct{ Low, High float64 }{f.Median - f.Min, f.Max - f.Median}
}

// addRanges adds min–max whiskers at pts to p.
func addRanges(p *plot.Plot, pts plotter.XYs, errs plotter.YErrors) {
	if eb, err := plotter.NewYErrorBars(struct {
		plotter.XYs
		plotter.YErrors
	}{pts, errs}); err == nil {
		p.Add(eb)
	}
}

// labelTicks are ticks at given positions with given labels.
type labelTicks []plot.Tick

func (t labelTicks) Ticks(_, _ float64) []plot.Tick { return t }

// barGroup is one group of bars (a connection mode) in a bar chart.
type barGroup struct {
	Label string
	Bars  []bar
}

type bar struct {
	Label string
	Fig   figure
}

// barChart draws grouped bars (the median) with min–max whiskers and the
// median printed above each.
func barChart(title, yLabel string, groups []barGroup) string {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	p.Y.Min = 0
	p.Legend.Top = true
	var ticks labelTicks
	nBars := 0
	for _, g := range groups {
		nBars = max(nBars, len(g.Bars))
	}
	const groupW = 1.0
	barW := 0.7 / float64(max(nBars, 1))
	legend := map[int]bool{}
	var whiskers plotter.XYs
	var errs plotter.YErrors
	var labels plotter.XYLabels
	for gi, g := range groups {
		x0 := float64(gi)*groupW + 0.15
		ticks = append(ticks, plot.Tick{Value: x0 + 0.35, Label: g.Label})
		for bi, b := range g.Bars {
			if isNaN(b.Fig.Median) {
				continue
			}
			l, r := x0+barW*float64(bi)+0.01, x0+barW*float64(bi+1)-0.01
			box, err := plotter.NewPolygon(plotter.XYs{{X: l, Y: 0}, {X: r, Y: 0}, {X: r, Y: b.Fig.Median}, {X: l, Y: b.Fig.Median}})
			if err != nil {
				continue
			}
			box.Color, box.LineStyle.Width = palette[bi%len(palette)], 0
			p.Add(box)
			if !legend[bi] {
				legend[bi] = true
				p.Legend.Add(strings.ReplaceAll(b.Label, "`", ""), box)
			}
			cx := (l + r) / 2
			whiskers = append(whiskers, plotter.XY{X: cx, Y: b.Fig.Median})
			errs = append(errs, rangeOf(b.Fig))
			labels.XYs = append(labels.XYs, plotter.XY{X: cx, Y: b.Fig.Max})
			labels.Labels = append(labels.Labels, formatRate(b.Fig.Median))
		}
	}
	if len(whiskers) > 0 {
		addRanges(p, whiskers, errs)
		if lb, err := plotter.NewLabels(labels); err == nil {
			for i := range lb.TextStyle {
				lb.TextStyle[i].XAlign = draw.XCenter
			}
			lb.Offset = vg.Point{Y: 3}
			p.Add(lb)
		}
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = 0, float64(len(groups))*groupW
	p.X.Label.Text = "bars: median; whiskers: min–max"
	return svgOf(19*vg.Centimeter, 11*vg.Centimeter, p.Draw)
}

// curve is one latency distribution for latencyChart.
type curve struct {
	Label  string
	Sorted []time.Duration
}

// latencyChart draws latency by percentile (x: p0 to p99.9 on a
// log(1/(1-q)) scale; y: milliseconds, log scale): the shape of the tail.
func latencyChart(title string, curves []curve) string {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency, ms (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	// Bottom right: the tails rise away from it.
	const xMax = 3.0 // p99.9
	p.X.Min, p.X.Max = 0, xMax
	var ticks labelTicks
	for _, t := range []struct {
		q     float64
		label string
	}{{0, "p0"}, {0.5, "p50"}, {0.9, "p90"}, {0.99, "p99"}, {0.999, "p99.9"}} {
		ticks = append(ticks, plot.Tick{Value: -math.Log10(1 - t.q), Label: t.label})
	}
	p.X.Tick.Marker = ticks
	p.Add(plotter.NewGrid())
	for i, c := range curves {
		if len(c.Sorted) == 0 {
			continue
		}
		var pts plotter.XYs
		for v := 0.0; v <= xMax+1e-9; v += 0.025 {
			q := 1 - math.Pow(10, -v)
			pts = append(pts, plotter.XY{X: v, Y: max(ms(percentile(c.Sorted, q)), 0.001)})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			continue
		}
		line.Color, line.Width = palette[i%len(palette)], vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(c.Label, line)
	}
	return svgOf(19*vg.Centimeter, 12*vg.Centimeter, p.Draw)
}

// panel is one small chart of panelChart: a value per step with its range.
type panel struct {
	Title  string
	Format func(float64) string
	Values []figure
}

// panelChart draws small multiples sharing the x steps (xLabels), two per
// row: each a line through the medians with min–max whiskers, y from 0.
func panelChart(title, xTitle string, xLabels []string, panels []panel) string {
	const cols = 2
	rows := (len(panels) + cols - 1) / cols
	var ticks labelTicks
	for j, l := range xLabels {
		ticks = append(ticks, plot.Tick{Value: float64(j), Label: l})
	}
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.Title
		p.X.Label.Text = xTitle
		p.X.Tick.Marker = ticks
		p.X.Min, p.X.Max = -0.3, float64(max(len(xLabels)-1, 0))+0.3
		p.Y.Min = 0
		p.Y.Tick.Marker = formatTicks(pn.Format)
		p.Add(plotter.NewGrid())
		var pts plotter.XYs
		var errs plotter.YErrors
		for j, f := range pn.Values {
			if isNaN(f.Median) {
				continue
			}
			pts = append(pts, plotter.XY{X: float64(j), Y: f.Median})
			errs = append(errs, rangeOf(f))
		}
		if len(pts) > 0 {
			if lp, sc, err := plotter.NewLinePoints(pts); err == nil {
				lp.Color, sc.Color = palette[0], palette[0]
				p.Add(lp, sc)
			}
			addRanges(p, pts, errs)
		}
		grid[i/cols][i%cols] = p
	}
	w, h := 24*vg.Centimeter, vg.Length(rows)*7*vg.Centimeter+vg.Centimeter
	return svgOf(w, h, func(dc draw.Canvas) {
		head := dc.Max.Y - vg.Centimeter
		sty := plot.New().Title.TextStyle
		sty.XAlign, sty.YAlign = draw.XLeft, draw.YCenter
		dc.FillText(sty, vg.Point{X: dc.Min.X + vg.Millimeter*5, Y: head + vg.Centimeter/2}, title)
		body := draw.Crop(dc, 0, 0, 0, -vg.Centimeter)
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6,
			PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
		canvases := plot.Align(grid, tiles, body)
		for r := range grid {
			for c := range grid[r] {
				if grid[r][c] != nil {
					grid[r][c].Draw(canvases[r][c])
				}
			}
		}
	})
}

// formatTicks is gonum's default ticks with labels printed by format.
type formatTicks func(float64) string

func (f formatTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = f(ticks[i].Value)
		}
	}
	return ticks
}
