"""Pure online detectors (river style): numbers in, scores out; no bytewax, no I/O."""
