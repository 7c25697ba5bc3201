"""sslkit's built-in plugins. Each module below is registered through the ``sslkit`` entry-point group in
pyproject.toml, exactly as a third-party package would register its own."""
