"""The model folder beyond its format (:mod:`zoo.artifact`): writing it with its card,
and the visualisations kept in it."""
