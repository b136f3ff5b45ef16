"""Stage 2: train SGAN and infer seeds."""
