"""Grade Linux lab VMs: connect over SSH, run testinfra checks, score them with a TOML rubric."""

__version__ = "0.1.0"
