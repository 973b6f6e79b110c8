from services.leads.domain.account import Account, AccountClassification

__all__ = ["Account", "AccountClassification"]
