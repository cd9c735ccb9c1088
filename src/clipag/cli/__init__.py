"""The `clipag` command: thin argument parsing over the library's functions."""
