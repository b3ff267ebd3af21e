package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// The charts are plain SVG written here: no plotting dependency.

var palette = []string{"#4e79a7", "#e15759", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#9c755f"}

func svgEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// barGroup is one group of bars (a connection mode) in a bar chart.
type barGroup struct {
	Label string
	Bars  []bar
}

type bar struct {
	Label string
	Fig   figure
}

// barChart draws grouped bars with min–max whiskers and the median printed
// on each bar.
func barChart(title, yLabel string, groups []barGroup) string {
	const w, h, left, right, top, bottom = 760, 420, 80, 20, 50, 70
	maxV := 0.0
	nBars := 0
	for _, g := range groups {
		nBars = max(nBars, len(g.Bars))
		for _, b := range g.Bars {
			if !isNaN(b.Fig.Max) {
				maxV = max(maxV, b.Fig.Max)
			}
		}
	}
	top10 := niceCeil(maxV * 1.1)
	plotW, plotH := float64(w-left-right), float64(h-top-bottom)
	y := func(v float64) float64 { return float64(top) + plotH*(1-v/top10) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, svgEscape(title))
	for i := 0; i <= 5; i++ {
		v := top10 * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, formatRate(v))
	}
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", float64(top)+plotH/2, svgEscape(yLabel))
	groupW := plotW / float64(len(groups))
	barW := groupW * 0.7 / float64(max(nBars, 1))
	for gi, g := range groups {
		gx := float64(left) + groupW*float64(gi) + groupW*0.15
		for bi, bb := range g.Bars {
			if isNaN(bb.Fig.Median) {
				continue
			}
			x := gx + barW*float64(bi)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x+2, y(bb.Fig.Median), barW-4, y(0)-y(bb.Fig.Median), palette[bi%len(palette)])
			cx := x + barW/2
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`, cx, cx, y(bb.Fig.Min), y(bb.Fig.Max))
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`, cx-5, cx+5, y(bb.Fig.Min), y(bb.Fig.Min))
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`, cx-5, cx+5, y(bb.Fig.Max), y(bb.Fig.Max))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", cx, y(bb.Fig.Max)-5, formatRate(bb.Fig.Median))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-weight="bold">%s</text>`+"\n", gx+groupW*0.35, h-bottom+18, svgEscape(g.Label))
	}
	// Legend from the first group's bar labels.
	if len(groups) > 0 {
		lx := float64(left)
		for bi, bb := range groups[0].Bars {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="12" height="12" fill="%s"/><text x="%.1f" y="%d">%s</text>`+"\n", lx, h-28, palette[bi%len(palette)], lx+16, h-18, svgEscape(bb.Label))
			lx += 30 + 7*float64(len(bb.Label))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#555">bars: median; whiskers: min–max</text>`+"\n", w-right, h-18)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// curve is one latency distribution for latencyChart.
type curve struct {
	Label  string
	Sorted []time.Duration
}

// latencyChart draws latency by percentile (x: 0, 50, 90, 99, 99.9 % on a
// log(1/(1-q)) scale; y: milliseconds, log scale): the shape of the tail.
func latencyChart(title string, curves []curve) string {
	const w, h, left, right, top, bottom = 760, 440, 70, 200, 50, 50
	plotW, plotH := float64(w-left-right), float64(h-top-bottom)
	lo, hi := math.Inf(1), 0.0
	for _, c := range curves {
		if len(c.Sorted) == 0 {
			continue
		}
		lo = min(lo, max(ms(c.Sorted[0]), 0.01))
		hi = max(hi, ms(percentile(c.Sorted, 0.999)))
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 1
	}
	yLo := math.Pow(10, math.Floor(math.Log10(lo)))
	yHi := math.Pow(10, math.Ceil(math.Log10(hi*1.01)))
	const xMax = 3.0 // p99.9
	x := func(q float64) float64 {
		v := -math.Log10(1 - q)
		return float64(left) + plotW*v/xMax
	}
	y := func(v float64) float64 {
		v = max(v, yLo)
		return float64(top) + plotH*(1-(math.Log10(v)-math.Log10(yLo))/(math.Log10(yHi)-math.Log10(yLo)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, svgEscape(title))
	for d := yLo; d <= yHi*1.001; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := d * m
			if v > yHi*1.001 {
				break
			}
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>`, left, w-right, y(v), y(v), stroke)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, trimFloat(v))
		}
	}
	for _, t := range []struct {
		q     float64
		label string
	}{{0, "p0"}, {0.5, "p50"}, {0.9, "p90"}, {0.99, "p99"}, {0.999, "p99.9"}} {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ccc"/>`, x(t.q), x(t.q), top, h-bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(t.q), h-bottom+16, t.label)
	}
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">latency, ms (log scale)</text>`+"\n", float64(top)+plotH/2)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">percentile</text>`+"\n", float64(left)+plotW/2, h-12)
	for i, c := range curves {
		if len(c.Sorted) == 0 {
			continue
		}
		var pts []string
		for v := 0.0; v <= xMax+1e-9; v += 0.025 {
			q := 1 - math.Pow(10, -v)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(q), y(ms(percentile(c.Sorted, q)))))
		}
		color := palette[i%len(palette)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		ly := top + 10 + 20*i
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%d" y="%d">%s</text>`+"\n", w-right+10, w-right+30, ly, ly, color, w-right+36, ly+4, svgEscape(c.Label))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func trimFloat(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// panel is one small chart of panelChart: a value per step with its range.
type panel struct {
	Title  string
	Format func(float64) string
	Values []figure
}

// panelChart draws small multiples sharing the x steps (xLabels): each
// panel a line through the medians with min–max whiskers, y from 0.
func panelChart(title, xTitle string, xLabels []string, panels []panel) string {
	const pw, ph, gap, top, cols = 340, 200, 50, 50, 2
	rows := (len(panels) + cols - 1) / cols
	w, h := cols*(pw+gap)+gap, top+rows*(ph+gap+20)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", gap, svgEscape(title))
	for i, p := range panels {
		ox := float64(gap + (i%cols)*(pw+gap) + 20)
		oy := float64(top + (i/cols)*(ph+gap+20) + 20)
		plotW, plotH := float64(pw-40), float64(ph-40)
		maxV := 0.0
		for _, f := range p.Values {
			if !isNaN(f.Max) {
				maxV = max(maxV, f.Max)
			}
		}
		yTop := niceCeil(maxV * 1.1)
		if yTop <= 0 {
			yTop = 1
		}
		x := func(j int) float64 {
			if len(xLabels) < 2 {
				return ox + plotW/2
			}
			return ox + plotW*float64(j)/float64(len(xLabels)-1)
		}
		y := func(v float64) float64 { return oy + plotH*(1-v/yTop) }
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-weight="bold">%s</text>`+"\n", ox, oy-8, svgEscape(p.Title))
		for k := 0; k <= 4; k++ {
			v := yTop * float64(k) / 4
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", ox, ox+plotW, y(v), y(v), ox-4, y(v)+4, svgEscape(p.Format(v)))
		}
		for j, l := range xLabels {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(j), oy+plotH+16, svgEscape(l))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#666">%s</text>`+"\n", ox+plotW/2, oy+plotH+32, svgEscape(xTitle))
		var pts []string
		for j, f := range p.Values {
			if isNaN(f.Median) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(j), y(f.Median)))
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#333"/>`, x(j), x(j), y(f.Min), y(f.Max))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(j), y(f.Median), palette[0])
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", palette[0], strings.Join(pts, " "))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
