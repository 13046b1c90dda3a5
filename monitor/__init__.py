"""News-monitoring feed ingestion: feeds -> entries -> articles -> items -> matches -> deliveries."""

__version__ = "0.1.0"
