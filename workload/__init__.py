"""The workload: trains one of the seed's Keras CNNs and times it, wherever the runner puts it."""
