"""Seeds from class maps: threshold (recipe 5) and CRF (recipe 6) seeds, the per-image writer, the
saved class maps and the hand-off to a DSRG-style trainer."""
