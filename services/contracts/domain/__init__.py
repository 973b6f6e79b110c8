from services.contracts.domain.approval import ApprovalStep, StepStatus
from services.contracts.domain.contract import (
    ClauseComment,
    Contract,
    ContractLine,
    ContractStatus,
    NotAnApprover,
    Review,
    ReviewDecision,
)

__all__ = [
    "ApprovalStep",
    "ClauseComment",
    "Contract",
    "ContractLine",
    "ContractStatus",
    "NotAnApprover",
    "Review",
    "ReviewDecision",
    "StepStatus",
]
