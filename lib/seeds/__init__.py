"""Seeds from class maps: threshold (SPEC 5) and CRF (SPEC 6) seeds, the per-image writer, the
saved class maps and the hand-off to a DSRG-style trainer."""
