"""PortBot: answers patients' questions about implanted venous access ports from a staff-curated knowledge base."""

__version__ = "0.1.0"
