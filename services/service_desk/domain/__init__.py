from services.service_desk.domain.survey import (
    InvalidAnswer,
    Survey,
    SurveyAlreadyAnswered,
    SurveyExpired,
    SurveyLink,
    SurveyStatus,
)
from services.service_desk.domain.warranty import Coverage, Warranty, add_months, check_coverage

__all__ = [
    "Coverage",
    "InvalidAnswer",
    "Survey",
    "SurveyAlreadyAnswered",
    "SurveyExpired",
    "SurveyLink",
    "SurveyStatus",
    "Warranty",
    "add_months",
    "check_coverage",
]
