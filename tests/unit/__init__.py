"""Pure functions: parsing, rendering, rules, signatures, logs, the manifest."""
