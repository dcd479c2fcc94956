"""churnstream: real-time churn and purchase-propensity scoring from event streams."""

__version__ = "0.1.0"
