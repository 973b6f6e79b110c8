from functools import lru_cache

from shared.config import ServiceSettings


class ContractsSettings(ServiceSettings):
    service_name: str = "contracts"
    # Where signatories reach this service (the gateway in production): the signing links' URLs.
    public_base_url: str = "http://127.0.0.1:8002"
    # The PDF of a signed contract embeds (a subset of) this font: it must cover Chinese.
    # Debian's fonts-noto-cjk (scripts/infra.sh install); index 2 of the collection is Simplified Chinese.
    pdf_font_path: str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
    pdf_bold_font_path: str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
    pdf_font_index: int = 2


@lru_cache
def get_settings() -> ContractsSettings:
    return ContractsSettings()
