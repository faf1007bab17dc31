"""Side-by-side benchmarks of neuronix against torch eager (``python -m benchmarks.suite``)."""
