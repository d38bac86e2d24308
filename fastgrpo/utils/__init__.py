"""Small shared helpers with no better home."""
