"""Leads: the sales CRM from lead capture to won opportunity (accounts, opportunities, quotes, targets)."""
