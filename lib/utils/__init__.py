"""Small shared helpers: file output, logging, devices."""
