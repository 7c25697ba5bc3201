"""Built-in pretext tasks, one module each."""
