"""Pictures: label colours, overlays, heat maps and grids; seed figures, the curve plot, the
method overview. matplotlib is imported where a figure is drawn (no global backend switch)."""
