"""pvem's benchmarks: `make bench` (full) or `make bench-smoke`; see bench/README.md."""
