"""`mlsd demo`: every capability end to end, on embedded defaults."""
