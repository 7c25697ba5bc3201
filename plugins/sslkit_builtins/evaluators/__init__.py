"""Built-in evaluators, one plugin module each."""
