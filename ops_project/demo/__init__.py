"""Demo material: a realistic booking database the embedded default, tests and benchmarks use."""
