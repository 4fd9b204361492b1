"""The `mlsd` command."""
