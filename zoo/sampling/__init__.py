"""Drawing samples from a loaded module: per-sample noise, batches, grids and PNGs, sinks."""
