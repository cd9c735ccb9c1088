"""Training data: image-caption pairs from CSV/TSV, webdataset shards and folders (pairs), and the emoji
set of the embedded models rebuilt from npm packages (emoji)."""
