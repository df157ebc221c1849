"""order-recovery: keeps an e-commerce order system alive through failed upgrades and site loss."""

__version__ = "0.1.0"
