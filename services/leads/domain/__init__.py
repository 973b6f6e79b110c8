from services.leads.domain.account import Account, AccountClassification
from services.leads.domain.grading import (
    DecisionTimeframe,
    Grade,
    GradingInputs,
    GradingRule,
    GradingRules,
    NeedFit,
)
from services.leads.domain.lead import Attribution, Lead, LeadSource
from services.leads.domain.matching import (
    DEFAULT_PHONE_REGION,
    InvalidIdentifier,
    MatchKey,
    MatchKind,
    match_keys,
    normalize_company_name,
    normalize_email,
    normalize_phone,
    normalize_uscc,
)

__all__ = [
    "DEFAULT_PHONE_REGION",
    "Account",
    "AccountClassification",
    "Attribution",
    "DecisionTimeframe",
    "Grade",
    "GradingInputs",
    "GradingRule",
    "GradingRules",
    "InvalidIdentifier",
    "Lead",
    "LeadSource",
    "MatchKey",
    "MatchKind",
    "NeedFit",
    "match_keys",
    "normalize_company_name",
    "normalize_email",
    "normalize_phone",
    "normalize_uscc",
]
