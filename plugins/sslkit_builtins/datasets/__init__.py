"""Built-in dataset providers, one plugin module each."""
