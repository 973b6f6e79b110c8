"""The customer's survey page: server-rendered HTML (Jinja2), no token needed but the link.

Public on purpose: the secret link is the credential. The page works on a phone (one column,
large touch targets), loads nothing from elsewhere (inline CSS, no scripts: a strict CSP says
so), and speaks Chinese or English (``?lang=`` first, then ``Accept-Language``, default
Chinese). The answer is a plain form POST (``application/x-www-form-urlencoded``) to the same
URL, so it works without JavaScript. A used, expired or unknown link gets a page that says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse

from services.service_desk import handlers
from services.service_desk.domain import InvalidAnswer, Survey, SurveyAlreadyAnswered, SurveyExpired
from shared.domain import NotFound
from shared.pages import PUBLIC, choose_language, html_page, page_templates, parse_form
from shared.service import get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/surveys/answer", tags=["survey page (customers)"])

TEMPLATES = page_templates(Path(__file__).resolve().parent.parent / "templates")

# A unit of work is reusable: each `async with` opens a fresh transaction.
Uow = Annotated[UnitOfWork, Depends(get_uow)]
TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "html_lang": "zh-CN",
        "title": "满意度调查",
        "greeting": "{name}，感谢您的惠顾！",
        "intro_delivery": "您的订单已送达。请花一分钟告诉我们您的体验。",
        "intro_ticket": "您的服务工单已处理完毕。请告诉我们您对本次服务的评价。",
        "csat": "您对本次体验的满意度如何？",
        "csat_low": "非常不满意",
        "csat_high": "非常满意",
        "nps": "您有多大可能向朋友或同事推荐我们？",
        "nps_low": "完全不可能",
        "nps_high": "非常可能",
        "comment": "还有什么想告诉我们的吗？（选填）",
        "submit": "提交",
        "error_csat": "请选择 1 到 5 分的满意度。",
        "error_nps": "请选择 0 到 10 分的推荐意愿。",
        "error_comment": "留言最多 2000 个字。",
        "thanks_title": "感谢您的反馈！",
        "thanks": "我们已收到您的回答。",
        "used_title": "此调查已完成",
        "used": "此链接已经提交过回答，每个链接只能回答一次。感谢您的参与！",
        "expired_title": "此调查链接已过期",
        "expired": "很抱歉，此链接已超过有效期，无法再提交回答。",
        "unknown_title": "找不到此调查",
        "unknown": "此链接无效。请检查链接是否完整。",
        "switch": "English",
        "confirm_title": "您的问题解决了吗？",
        "confirm_intro": "工单 {number}：{subject}",
        "confirm_resolution": "处理结果：",
        "confirm_yes": "已解决，关闭工单",
        "confirm_no": "未解决，重新处理",
        "confirm_note": "如未解决，请说明情况（选填）",
        "confirmed_title": "感谢确认！",
        "confirmed": "工单已关闭。",
        "reopened_title": "我们会继续处理",
        "reopened": "工单已重新打开，客服会尽快与您联系。",
        "confirm_unknown_title": "此链接已失效",
        "confirm_unknown": "此工单已确认、已关闭或链接无效。",
        "repair_title": "请确认维修结果",
        "repair_intro": "工单 {number} 的维修已完成。请确认是否验收。",
        "repair_findings": "检测结果：",
        "repair_parts": "更换配件：",
        "repair_charge": "应付费用：",
        "repair_warranty": "（保修期内，免费）",
        "repair_accept": "验收通过",
        "repair_reason": "如不满意，请说明原因（拒绝验收时必填）",
        "repair_reject": "拒绝验收，继续维修",
        "repair_error_reason": "拒绝验收时请说明原因。",
        "repair_accepted_title": "感谢您的验收！",
        "repair_accepted": "维修已确认完成。",
        "repair_rejected_title": "我们会继续维修",
        "repair_rejected": "已收到您的意见，维修人员会尽快继续处理。",
        "repair_used_title": "此链接已使用",
        "repair_used": "您已对这次维修作出答复，每个链接只能使用一次。",
        "repair_expired_title": "此验收链接已过期",
        "repair_expired": "很抱歉，此链接已超过有效期。请联系客服。",
        "repair_unknown_title": "找不到此维修",
        "repair_unknown": "此链接无效或已被新的链接取代。",
    },
    "en": {
        "html_lang": "en",
        "title": "Satisfaction survey",
        "greeting": "Thank you, {name}!",
        "intro_delivery": "Your order has been delivered. Please take a minute to tell us how it went.",
        "intro_ticket": "Your service request has been resolved. Please tell us how we did.",
        "csat": "How satisfied are you with your experience?",
        "csat_low": "Very dissatisfied",
        "csat_high": "Very satisfied",
        "nps": "How likely are you to recommend us to a friend or colleague?",
        "nps_low": "Not at all likely",
        "nps_high": "Extremely likely",
        "comment": "Anything else you would like to tell us? (optional)",
        "submit": "Submit",
        "error_csat": "Please choose a satisfaction score from 1 to 5.",
        "error_nps": "Please choose a score from 0 to 10.",
        "error_comment": "The comment may have at most 2000 characters.",
        "thanks_title": "Thank you for your feedback!",
        "thanks": "We have received your answer.",
        "used_title": "This survey has already been answered",
        "used": "An answer was already submitted with this link; each link can be answered once. Thank you!",
        "expired_title": "This survey link has expired",
        "expired": "Sorry, this link is past its validity and can no longer be answered.",
        "unknown_title": "Survey not found",
        "unknown": "This link is not valid. Please check that it is complete.",
        "switch": "中文",
        "confirm_title": "Is your issue resolved?",
        "confirm_intro": "Ticket {number}: {subject}",
        "confirm_resolution": "What we did:",
        "confirm_yes": "Yes, close the ticket",
        "confirm_no": "No, it is not resolved",
        "confirm_note": "If not, tell us what is still wrong (optional)",
        "confirmed_title": "Thank you for confirming!",
        "confirmed": "The ticket is closed.",
        "reopened_title": "We are on it again",
        "reopened": "The ticket has been reopened; our support team will contact you soon.",
        "confirm_unknown_title": "This link is no longer valid",
        "confirm_unknown": "This ticket was already confirmed or closed, or the link is not valid.",
        "repair_title": "Please check the repair",
        "repair_intro": "The repair for ticket {number} is done. Do you accept it?",
        "repair_findings": "What we found:",
        "repair_parts": "Parts replaced:",
        "repair_charge": "To pay:",
        "repair_warranty": "(under warranty: free of charge)",
        "repair_accept": "Accept the repair",
        "repair_reason": "If you are not satisfied, tell us why (required to reject)",
        "repair_reject": "Reject: repair it again",
        "repair_error_reason": "Please say why you reject the repair.",
        "repair_accepted_title": "Thank you for accepting!",
        "repair_accepted": "The repair is confirmed as done.",
        "repair_rejected_title": "We will repair it again",
        "repair_rejected": "We have your feedback; our technicians will continue shortly.",
        "repair_used_title": "This link was already used",
        "repair_used": "You have already answered for this repair; each link can be used once.",
        "repair_expired_title": "This acceptance link has expired",
        "repair_expired": "Sorry, this link is past its validity. Please contact our support team.",
        "repair_unknown_title": "Repair not found",
        "repair_unknown": "This link is not valid, or a newer link replaced it.",
    },
}


def render(template: str, lang: str, status: int, **context: Any) -> HTMLResponse:
    return html_page(TEMPLATES, template, status, t=TEXT[lang], lang=lang, **context)


def _refusal(exc: Exception, lang: str) -> HTMLResponse:
    if isinstance(exc, SurveyAlreadyAnswered):
        return render("survey_message.html", lang, 409, kind="used")
    if isinstance(exc, SurveyExpired):
        return render("survey_message.html", lang, 410, kind="expired")
    return render("survey_message.html", lang, 404, kind="unknown")


def _form(survey: Survey, lang: str, status: int = 200, *, errors=(), values=None) -> HTMLResponse:
    return render("survey.html", lang, status, survey=survey, errors=list(errors), values=values or {})


@router.get("/{token}", response_class=HTMLResponse, summary="The customer's survey page", openapi_extra=PUBLIC)
async def survey_page(token: str, request: Request, uow: Uow) -> HTMLResponse:
    lang = choose_language(request)
    try:
        survey = await handlers.open_survey(token, uow)
    except (NotFound, SurveyAlreadyAnswered, SurveyExpired) as exc:
        return _refusal(exc, lang)
    return _form(survey, lang)


@router.post(
    "/{token}", response_class=HTMLResponse, summary="The customer answers (a form post)", openapi_extra=PUBLIC
)
async def answer_survey(token: str, request: Request, uow: Uow) -> HTMLResponse:
    form = parse_form(await request.body())
    lang = choose_language(request, form.get("lang"))
    cmd = handlers.AnswerSurvey(
        token=token, csat=_score(form.get("csat")), nps=_score(form.get("nps")), comment=form.get("comment")
    )
    try:
        await handlers.answer_survey(cmd, uow)
    except (NotFound, SurveyAlreadyAnswered, SurveyExpired) as exc:
        return _refusal(exc, lang)
    except InvalidAnswer as exc:
        survey = await handlers.open_survey(token, uow)
        return _form(survey, lang, 422, errors=[f"error_{exc.field}"], values=form)
    return render("survey_message.html", lang, 200, kind="thanks")


def _score(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() and len(value) <= 2 else None
