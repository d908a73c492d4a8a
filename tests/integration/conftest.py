"""Integration tests start their own Ray clusters, in subprocesses (see ``_ray_utils``)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cluster: starts its own Ray cluster in a subprocess (deselect with -m 'not cluster')",
    )
