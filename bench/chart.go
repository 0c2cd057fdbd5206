package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"time"
)

// The chart is drawn with the standard library alone (plus a bitmap font
// rendered from DejaVu Sans Mono into font_data.go), so the harness adds no
// plotting dependency to the module: two horizontal bar panels sharing the
// scenario labels, throughput (records/s, median) and p99 end-to-end
// latency.

var (
	colWhite = color.RGBA{255, 255, 255, 255}
	colText  = color.RGBA{30, 30, 30, 255}
	colGrid  = color.RGBA{225, 225, 225, 255}
	colAxis  = color.RGBA{120, 120, 120, 255}
	// Bar colours by system and guarantee.
	colEO      = color.RGBA{31, 84, 160, 255}
	colALO     = color.RGBA{120, 170, 225, 255}
	colBare    = color.RGBA{150, 150, 150, 255}
	colStreams = color.RGBA{230, 126, 34, 255}
	colTMC     = color.RGBA{60, 160, 90, 255}
)

func barColor(s Scenario) color.RGBA {
	switch s.System {
	case Bare, BareCopy:
		return colBare
	case Streams:
		return colStreams
	case TMC:
		return colTMC
	}
	if s.Guarantee == ExactlyOnce {
		return colEO
	}
	return colALO
}

// DrawChart writes the PNG of aggs to w.
func DrawChart(w io.Writer, title string, aggs []Aggregate) error {
	const (
		rowH   = 20
		top    = 60
		bottom = 50
		gap    = 40
		panelT = 460 // throughput panel width
		panelL = 320 // latency panel width
	)
	labelW := 0
	for _, a := range aggs {
		labelW = max(labelW, len(a.Scenario.Name())*glyphW)
	}
	labelW += 20
	width := labelW + panelT + gap + panelL + 30
	height := top + len(aggs)*rowH + bottom
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), &image.Uniform{colWhite}, image.Point{}, draw.Src)
	drawText(img, 10, 8, title, colText)

	maxRate, maxP99 := 0.0, 0.0
	for _, a := range aggs {
		if !math.IsNaN(a.Rate) {
			maxRate = max(maxRate, a.Rate)
		}
		if a.Latency != nil && a.Latency.N > 0 {
			maxP99 = max(maxP99, ms(a.Latency.P99))
		}
	}
	rateScale := niceCeil(maxRate)
	latScale := niceCeil(maxP99)

	x0 := labelW
	x1 := labelW + panelT + gap
	drawText(img, x0, top-28, "throughput, records/s (median)", colText)
	drawText(img, x1, top-28, "p99 end-to-end latency, ms", colText)
	plotH := len(aggs) * rowH
	axis(img, x0, top, panelT, plotH, rateScale, "%.0fk", 1000)
	axis(img, x1, top, panelL, plotH, latScale, "%.0f", 1)

	for i, a := range aggs {
		y := top + i*rowH
		name := a.Scenario.Name()
		drawText(img, labelW-10-len(name)*glyphW, y+3, name, colText)
		c := barColor(a.Scenario)
		if !math.IsNaN(a.Rate) && rateScale > 0 {
			bar(img, x0, y+3, int(float64(panelT)*a.Rate/rateScale), rowH-6, c)
		}
		if a.Latency != nil && a.Latency.N > 0 && latScale > 0 {
			bar(img, x1, y+3, int(float64(panelL)*ms(a.Latency.P99)/latScale), rowH-6, c)
		} else {
			drawText(img, x1+4, y+3, "n/a", colAxis)
		}
	}

	// Legend.
	lx, ly := 10, height-22
	for _, l := range []struct {
		c    color.RGBA
		name string
	}{{colEO, "connectd exactly_once"}, {colALO, "connectd at_least_once"}, {colBare, "bare baseline"}, {colStreams, "Kafka Streams EOS v2"}, {colTMC, "TransactionalMessageCopier"}} {
		bar(img, lx, ly+3, 12, 10, l.c)
		drawText(img, lx+16, ly, l.name, colText)
		lx += 16 + len(l.name)*glyphW + 20
	}
	return png.Encode(w, img)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// axis draws a panel's frame, vertical grid lines at quarters of scale,
// and their labels (value/div formatted).
func axis(img *image.RGBA, x, y, w, h int, scale float64, format string, div float64) {
	for i := 0; i <= 4; i++ {
		gx := x + w*i/4
		vline(img, gx, y, y+h, colGrid)
		label := fmt.Sprintf(format, scale*float64(i)/4/div)
		drawText(img, gx-len(label)*glyphW/2, y+h+4, label, colAxis)
	}
	vline(img, x, y, y+h, colAxis)
	hline(img, x, x+w, y+h, colAxis)
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten, so the
// quarter grid lines fall on round numbers.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 4, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func bar(img *image.RGBA, x, y, w, h int, c color.RGBA) {
	draw.Draw(img, image.Rect(x, y, x+max(w, 1), y+h), &image.Uniform{c}, image.Point{}, draw.Src)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

// drawText draws s with its top-left corner at (x, y), blending each
// glyph's coverage over what is there.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, r := range s {
		if r < 32 || r > 126 {
			r = '?'
		}
		g := glyphData[r-32]
		for gy := range glyphH {
			for gx := range glyphW {
				cov := hexVal(g[gy*glyphW+gx])
				if cov == 0 {
					continue
				}
				px, py := x+gx, y+gy
				if !(image.Point{px, py}.In(img.Rect)) {
					continue
				}
				bg := img.RGBAAt(px, py)
				a := uint32(cov) * 17 // 0..255
				blend := func(f, b uint8) uint8 { return uint8((uint32(f)*a + uint32(b)*(255-a)) / 255) }
				img.SetRGBA(px, py, color.RGBA{blend(c.R, bg.R), blend(c.G, bg.G), blend(c.B, bg.B), 255})
			}
		}
		x += glyphW
	}
}

func hexVal(b byte) uint8 {
	if b >= 'a' {
		return b - 'a' + 10
	}
	return b - '0'
}
