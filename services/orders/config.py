from decimal import Decimal
from functools import lru_cache

from pydantic import model_validator

from shared.config import ServiceSettings

# A Standard Webhooks secret ("whsec_" + base64) for local runs and tests only.
DEV_ERP_WEBHOOK_SECRET = "whsec_c2FsZXNsaW5lLWRldmVsb3BtZW50LWVycC1zZWNyZXQ="


class OrdersSettings(ServiceSettings):
    service_name: str = "orders"
    # Signs the ERP's callbacks to /v1/erp/... (SALESLINE_ORDERS_ERP_WEBHOOK_SECRET).
    erp_webhook_secret: str = DEV_ERP_WEBHOOK_SECRET
    # The credit limit of a customer the ERP has not sent one for yet, in the order's currency.
    default_credit_limit: Decimal = Decimal("500000.00")
    # Delivery dates are calendar days in the business's time zone (on-time delivery report).
    business_timezone: str = "Asia/Shanghai"

    @model_validator(mode="after")
    def _refuse_development_erp_secret(self) -> "OrdersSettings":
        if self.environment not in ("development", "test") and self.erp_webhook_secret == DEV_ERP_WEBHOOK_SECRET:
            raise ValueError("SALESLINE_ORDERS_ERP_WEBHOOK_SECRET is the development default; set the ERP's secret")
        return self


@lru_cache
def get_settings() -> OrdersSettings:
    return OrdersSettings()
