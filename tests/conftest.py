# Fixtures shared with ui-tests/ live in tests/fixtures.py, loaded as a plugin (pyproject.toml).
