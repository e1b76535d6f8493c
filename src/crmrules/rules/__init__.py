"""The rule language: reading, checking and compiling regulations."""
