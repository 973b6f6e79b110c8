from services.service_desk.domain.survey import Survey, SurveyStatus
from services.service_desk.domain.warranty import Coverage, Warranty, add_months, check_coverage

__all__ = ["Coverage", "Survey", "SurveyStatus", "Warranty", "add_months", "check_coverage"]
