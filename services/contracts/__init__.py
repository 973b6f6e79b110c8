"""Contracts: drafting, review, approval, e-signature, archive. A signed contract enters the order."""
