"""Root conftest: the pytester fixture for the plugin's own tests, nothing heavy."""

pytest_plugins = ["pytester"]
