"""Property tests: any input, never a 5xx or a change it should not make."""
