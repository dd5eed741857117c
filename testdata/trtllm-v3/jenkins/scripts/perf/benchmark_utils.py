# Placeholder: upstream's v3 generator imports its benchmark-mode helpers from here; with cluster_env.py it marks the perf-sanity-v3 layout. Never imported or run.
