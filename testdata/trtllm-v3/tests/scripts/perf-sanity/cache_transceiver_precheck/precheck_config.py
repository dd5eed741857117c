# Placeholder: upstream's v3 generator imports its precheck timeouts from here, so a perf-sanity-v3 checkout must have this file (disagg-runner checks that it exists and never reads it).
raise SystemExit("stand-in precheck_config.py: a placeholder, not the precheck configuration")
