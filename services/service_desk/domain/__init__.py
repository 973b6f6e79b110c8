from services.service_desk.domain.survey import Survey, SurveyStatus

__all__ = ["Survey", "SurveyStatus"]
