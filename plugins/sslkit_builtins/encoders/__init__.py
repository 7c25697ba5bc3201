"""Built-in encoders, one plugin module each."""
