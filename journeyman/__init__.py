"""journeyman: warehouse-native AI decisioning for customer journeys."""

__version__ = "0.1.0"
