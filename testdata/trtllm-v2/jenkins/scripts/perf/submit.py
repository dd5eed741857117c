# Placeholder: the unified perf generator lives here upstream; with tests/scripts/perf-sanity/disaggregated/ it marks this layout.
