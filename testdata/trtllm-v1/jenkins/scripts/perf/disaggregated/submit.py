# Placeholder: the disagg-v1 generator lives here upstream; its presence marks this layout.
