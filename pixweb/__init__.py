"""pixweb: a self-hosted PIX payment gateway."""

__version__ = "0.1.0"
