from services.contracts.domain.contract import Contract, ContractLine, ContractStatus

__all__ = ["Contract", "ContractLine", "ContractStatus"]
