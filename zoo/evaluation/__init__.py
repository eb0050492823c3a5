"""Evaluating a model folder: metrics and the digit-classifier features they use."""
