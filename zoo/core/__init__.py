"""The torch-free core: errors, specs, the family contract, records, hook specs,
plugin loading and the registry. Nothing here imports torch (``import zoo`` stays light)."""
