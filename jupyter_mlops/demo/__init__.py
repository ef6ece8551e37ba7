"""Demo data generators (seeded, reusable by tests, benchmarks and reference projects)."""
