"""The model folder beyond its format (:mod:`zoo.artifact`): writing it with its card,
training checkpoints, and the visualisations kept in it."""
