from services.orders.domain.order import NotAnApprover, Order, Overpayment, effective_discount_pct
from services.orders.domain.values import (
    Amendment,
    ApprovalStep,
    CreditFigures,
    Level,
    OrderLine,
    OrderStatus,
    ShipmentStatus,
    StepStatus,
)

__all__ = [
    "Amendment",
    "ApprovalStep",
    "CreditFigures",
    "Level",
    "NotAnApprover",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Overpayment",
    "ShipmentStatus",
    "StepStatus",
    "effective_discount_pct",
]
