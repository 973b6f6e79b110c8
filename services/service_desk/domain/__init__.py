from services.service_desk.domain.agent import Agent, choose_agent
from services.service_desk.domain.article import Article, ArticleStatus, ArticleVersion
from services.service_desk.domain.survey import (
    InvalidAnswer,
    Survey,
    SurveyAlreadyAnswered,
    SurveyExpired,
    SurveyLink,
    SurveyStatus,
)
from services.service_desk.domain.ticket import (
    OPEN_STATUSES,
    Channel,
    Priority,
    Ticket,
    TicketStatus,
    TicketType,
)
from services.service_desk.domain.warranty import Coverage, Warranty, add_months, check_coverage

__all__ = [
    "OPEN_STATUSES",
    "Agent",
    "Article",
    "ArticleStatus",
    "ArticleVersion",
    "Channel",
    "Coverage",
    "InvalidAnswer",
    "Priority",
    "Survey",
    "SurveyAlreadyAnswered",
    "SurveyExpired",
    "SurveyLink",
    "SurveyStatus",
    "Ticket",
    "TicketStatus",
    "TicketType",
    "Warranty",
    "add_months",
    "check_coverage",
    "choose_agent",
]
