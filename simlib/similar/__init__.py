"""Similar tracks: which library tracks sound like a given one.

encoder.py (the network, for training) -> model.py (weights -> one vector per track) ->
index.py (exact cosines standardised on the library) -> query.py (seeds, filters,
results). Import the modules themselves: the package imports nothing, so that code that
only builds an index does not load the model's dependencies.
"""
