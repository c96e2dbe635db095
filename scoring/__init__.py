"""Candor's core: product specs, data, training, the model artifact, scoring and explanation.

Nothing in this package imports Django, so it can be read, tested and benchmarked on its own.
"""
