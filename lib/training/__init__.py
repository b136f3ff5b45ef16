"""Training: the one loop of every stage, its processes (distributed set-up) and run-time set-up."""
