"""NumPy oracles written from the specs, used by tests to check the Keras implementations."""
