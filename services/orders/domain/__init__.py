from services.orders.domain.order import Order, OrderLine, OrderStatus

__all__ = ["Order", "OrderLine", "OrderStatus"]
