"""Identification: which library track is a recorded clip, and where in it.

encoder.py (the network, for training) -> model.py (weights -> segment vectors) ->
index.py (inverted lists) -> query.py (a clip end to end: vote.py, verify.py, source_check.py,
policy.py). Import the modules themselves: the package imports nothing, so that code that
only builds an index does not load the model's dependencies.
"""
