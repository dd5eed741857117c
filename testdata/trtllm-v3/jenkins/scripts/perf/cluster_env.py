# Placeholder: upstream's v3 generator imports its cluster table (UCX settings by cluster name) from here; with benchmark_utils.py it marks the perf-sanity-v3 layout. Never imported or run.
