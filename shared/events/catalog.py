"""Every event type Salesline publishes, declared once.

Rules: names are past tense; fields are only ever added, and only as optional; a breaking
change is a new ``.vN`` type. ``tests/test_event_schemas.py`` snapshots the JSON schema of
every type here, so a change to this file shows up in review.

Money is a ``Decimal`` (a string in JSON) with an ISO 4217 currency beside it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from shared.events.base import Event

__all__ = [
    "AccountClassified",
    "AccountContactOverdue",
    "AccountFollowUpDue",
    "AccountTierChanged",
    "ActivityFollowUpDue",
    "ActivityLogged",
    "ActivityVisitReported",
    "ActivityVisitReviewed",
    "ContactInfo",
    "ContractApprovalDecision",
    "ContractApproved",
    "ContractClauseComment",
    "ContractDrafted",
    "ContractLine",
    "ContractRejected",
    "ContractSentForSignature",
    "ContractSigned",
    "ContractSigningParty",
    "ContractSubmitted",
    "ContractTerminated",
    "DeliveredItem",
    "InvoiceIssued",
    "LeadAssigned",
    "LeadConverted",
    "LeadCreated",
    "LeadGraded",
    "LeadMerged",
    "LeadOwnerChanged",
    "LeadReturnedToPool",
    "OpportunityLost",
    "OpportunityStageChanged",
    "OpportunityWon",
    "OrderApproved",
    "OrderCancelled",
    "OrderChanged",
    "OrderCreated",
    "OrderDelayed",
    "OrderDelivered",
    "OrderRejected",
    "OrderShipped",
    "PaymentReceived",
    "QuoteAccepted",
    "ShippedItem",
    "SurveyCompleted",
    "SurveyReminded",
    "SurveySent",
    "TicketAssigned",
    "TicketClosed",
    "TicketOpened",
    "TicketReopened",
    "TicketRepairCompleted",
    "TicketResolved",
    "TicketSlaBreached",
    "TicketSlaWarned",
    "WarrantyRegistered",
    "WebhookSubscriptionDisabled",
    "WebhookSubscriptionPinged",
]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ContactInfo(_Part):
    name: str
    email: str | None = None
    phone: str | None = None


class ContractLine(_Part):
    line_no: int
    sku: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_pct: Decimal = Decimal("0")
    amount: Decimal
    warranty_months: int = 0


class DeliveredItem(_Part):
    line_no: int
    sku: str
    description: str
    quantity: Decimal
    serial_numbers: tuple[str, ...] = ()
    warranty_months: int = 0


# --- leads -------------------------------------------------------------------------------


class AccountClassified(Event, type="account.classified.v1"):
    account_id: str
    customer_name: str
    classification: str
    previous_classification: str | None = None
    reason: str | None = None


class LeadCreated(Event, type="lead.created.v1"):
    """A lead was registered. ``owner_id`` is who owns the customer (the first rep to register
    it, or the rep the assignment rules chose; "" with ``in_pool`` when nobody could take it);
    ``registered_by`` who entered this lead. A lead matching an earlier lead or account
    carries the match in ``duplicate_of_lead_id`` / ``matched_account_id``."""

    lead_id: uuid.UUID
    source: str
    owner_id: str
    registered_by: str
    company_name: str | None = None
    contact_name: str | None = None
    region: str | None = None
    industry: str | None = None
    grade: str | None = None
    campaign: str | None = None
    duplicate_of_lead_id: uuid.UUID | None = None
    matched_account_id: uuid.UUID | None = None
    ownership_conflict: bool = False
    # True when nobody could take it and it went to the public pool (``owner_id`` is then "").
    in_pool: bool = False


class LeadGraded(Event, type="lead.graded.v1"):
    """The lead's grade changed because its budget, timeframe or need fit did."""

    lead_id: uuid.UUID
    grade: str
    previous_grade: str | None = None
    rules_version: int


class LeadOwnerChanged(Event, type="lead.owner_changed.v1"):
    """A sales manager overrode the first-registered owner (with a reason)."""

    lead_id: uuid.UUID
    owner_id: str
    previous_owner_id: str
    changed_by: str
    reason: str


class OpportunityWon(Event, type="opportunity.won.v1"):
    """An opportunity was won on its accepted quote: everything contract drafting needs, so the
    contracts service never calls back. ``lines`` use the contract line shape."""

    opportunity_id: uuid.UUID
    quote_id: uuid.UUID
    quote_number: str | None = None
    account_id: str
    customer_name: str
    contact: ContactInfo | None = None
    owner_id: str
    region: str | None = None
    currency: str
    lines: tuple[ContractLine, ...]
    subtotal_amount: Decimal
    discount_pct: Decimal = Decimal("0")
    total_amount: Decimal
    payment_terms: str | None = None
    delivery_address: str | None = None
    requested_delivery_date: str | None = None
    won_at: datetime


# --- contracts ---------------------------------------------------------------------------


class ContractDrafted(Event, type="contract.drafted.v1"):
    contract_id: uuid.UUID
    contract_number: str
    customer_id: str
    customer_name: str
    owner_id: str
    currency: str
    total_amount: Decimal


class ContractSigned(Event, type="contract.signed.v1"):
    """Everything order entry needs, so the orders service never calls back."""

    contract_id: uuid.UUID
    contract_number: str
    customer_id: str
    customer_name: str
    contact: ContactInfo | None = None
    owner_id: str
    region: str | None = None
    currency: str
    lines: tuple[ContractLine, ...]
    subtotal_amount: Decimal
    discount_pct: Decimal = Decimal("0")
    total_amount: Decimal
    payment_terms: str
    delivery_address: str | None = None
    requested_delivery_date: str | None = None
    signed_at: datetime


class ContractClauseComment(_Part):
    clause: str
    comment: str


class ContractApprovalDecision(_Part):
    """One approval step as decided: who, with which authority, under which policy and threshold."""

    role: str
    decided_by: str
    decided_role: str
    authority_pct: Decimal | None = None  # None: no upper limit
    policy_version: str
    threshold: str


class ContractSubmitted(Event, type="contract.submitted.v1"):
    """A draft revision was submitted for legal review."""

    contract_id: uuid.UUID
    contract_number: str
    revision: int
    owner_id: str
    submitted_by: str
    currency: str
    total_amount: Decimal
    discount_pct: Decimal
    submitted_at: datetime


class ContractApproved(Event, type="contract.approved.v1"):
    """Legal review and every approval step the policy required passed (``approvals`` may be empty
    when the discount and amount were within the owner's authority)."""

    contract_id: uuid.UUID
    contract_number: str
    revision: int
    customer_id: str
    owner_id: str
    currency: str
    total_amount: Decimal
    discount_pct: Decimal
    policy_version: str
    approvals: tuple[ContractApprovalDecision, ...] = ()
    approved_by: str | None = None
    approved_at: datetime


class ContractRejected(Event, type="contract.rejected.v1"):
    """Legal requested changes (``stage`` legal_review) or an approver rejected (``stage`` approval):
    the contract is back in draft as a new revision."""

    contract_id: uuid.UUID
    contract_number: str
    revision: int  # the revision that was rejected
    owner_id: str
    stage: str
    rejected_by: str
    role: str
    reason: str
    authority_pct: Decimal | None = None
    policy_version: str | None = None
    threshold: str | None = None
    comments: tuple[ContractClauseComment, ...] = ()
    rejected_at: datetime


class ContractSigningParty(_Part):
    party: str  # customer | company
    link_id: uuid.UUID
    signatory_name: str
    expires_at: datetime


class ContractSentForSignature(Event, type="contract.sent_for_signature.v1"):
    """Signing links were issued, one per party (the tokens themselves are never published)."""

    contract_id: uuid.UUID
    contract_number: str
    revision: int
    owner_id: str
    customer_id: str
    parties: tuple[ContractSigningParty, ...]
    sent_by: str
    sent_at: datetime


class ContractTerminated(Event, type="contract.terminated.v1"):
    """A signed or active contract ended early, with the reason."""

    contract_id: uuid.UUID
    contract_number: str
    customer_id: str
    owner_id: str
    previous_status: str  # signed | active
    reason: str
    terminated_by: str
    terminated_at: datetime


# --- orders ------------------------------------------------------------------------------


class OrderCreated(Event, type="order.created.v1"):
    order_id: uuid.UUID
    order_number: str
    contract_id: uuid.UUID | None = None
    customer_id: str
    customer_name: str
    owner_id: str
    currency: str
    total_amount: Decimal


class OrderDelivered(Event, type="order.delivered.v1"):
    """Everything after-sales needs: who to survey and what warranty to register."""

    order_id: uuid.UUID
    order_number: str
    contract_id: uuid.UUID | None = None
    customer_id: str
    customer_name: str
    contact: ContactInfo | None = None
    owner_id: str
    items: tuple[DeliveredItem, ...]
    delivered_at: datetime


class OrderApproved(Event, type="order.approved.v1"):
    """The last approval level passed: the order (or a change request to it) is approved."""

    order_id: uuid.UUID
    order_number: str
    customer_id: str
    owner_id: str
    currency: str
    total_amount: Decimal
    approval_round: int
    change_request: bool = False
    policy_version: str
    approved_by: str
    approved_at: datetime


class OrderRejected(Event, type="order.rejected.v1"):
    """An approver rejected the order (back to its owner) or a change request (discarded)."""

    order_id: uuid.UUID
    order_number: str
    owner_id: str
    level: str
    rejected_by: str
    role: str
    reason: str
    change_request: bool = False
    rejected_at: datetime


class OrderChanged(Event, type="order.changed.v1"):
    """``kind``: amended (before approval), change_requested, change_applied, change_discarded."""

    order_id: uuid.UUID
    order_number: str
    kind: str
    changed_by: str
    fields: tuple[str, ...]
    total_amount: Decimal
    reason: str | None = None
    changed_at: datetime


class OrderDelayed(Event, type="order.delayed.v1"):
    order_id: uuid.UUID
    order_number: str
    customer_id: str
    shipment_id: uuid.UUID | None = None
    previous_date: str | None = None
    promised_date: str
    reason: str


class ShippedItem(_Part):
    line_no: int
    sku: str
    quantity: Decimal
    serial_numbers: tuple[str, ...] = ()


class OrderShipped(Event, type="order.shipped.v1"):
    order_id: uuid.UUID
    order_number: str
    customer_id: str
    shipment_id: uuid.UUID
    carrier: str | None = None
    tracking_number: str | None = None
    items: tuple[ShippedItem, ...]
    expected_delivery_date: str | None = None
    shipped_at: datetime


class OrderCancelled(Event, type="order.cancelled.v1"):
    order_id: uuid.UUID
    order_number: str
    customer_id: str
    owner_id: str
    reason: str
    cancelled_by: str
    cancelled_at: datetime


class PaymentReceived(Event, type="payment.received.v1"):
    payment_id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    customer_id: str
    currency: str
    amount: Decimal
    paid_amount: Decimal
    outstanding_amount: Decimal
    reference: str | None = None
    received_at: datetime


class InvoiceIssued(Event, type="invoice.issued.v1"):
    invoice_number: str
    order_id: uuid.UUID
    order_number: str
    customer_id: str
    currency: str
    amount: Decimal
    issued_at: datetime
    due_date: str | None = None


# --- service desk ------------------------------------------------------------------------


class SurveySent(Event, type="survey.sent.v1"):
    survey_id: uuid.UUID
    trigger: str  # "order.delivered" or "ticket.resolved"
    order_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    customer_id: str
    contact: ContactInfo | None = None
    # The customer's survey page (a secret link: one response, expires at ``expires_at``), for
    # the ERP or mailing system that delivers it.
    link: str | None = None
    expires_at: datetime | None = None


class WarrantyRegistered(Event, type="warranty.registered.v1"):
    warranty_id: uuid.UUID
    order_id: uuid.UUID
    customer_id: str
    sku: str
    serial_number: str | None = None
    starts_at: datetime
    ends_at: datetime


class SurveyCompleted(Event, type="survey.completed.v1"):
    """The customer answered: CSAT 1-5, NPS 0-10 (delivery surveys only) and a comment."""

    survey_id: uuid.UUID
    trigger: str
    order_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    customer_id: str
    owner_id: str | None = None
    csat: int
    nps: int | None = None
    comment: str | None = None
    completed_at: datetime


class TicketOpened(Event, type="ticket.opened.v1"):
    """``complaint`` flags complaints and ``repeat_issue`` repeats, which are counted."""

    ticket_id: uuid.UUID
    ticket_number: str
    channel: str
    ticket_type: str
    priority: str
    group: str
    subject: str
    customer_id: str
    order_id: uuid.UUID | None = None
    serial_number: str | None = None
    complaint: bool = False
    opened_at: datetime
    # Same account and category as another ticket within 30 days.
    repeat_issue: bool = False


class TicketAssigned(Event, type="ticket.assigned.v1"):
    """``assigned_by`` is the lead who reassigned by hand; absent for automatic assignment."""

    ticket_id: uuid.UUID
    ticket_number: str
    assignee_id: str
    previous_assignee_id: str | None = None
    group: str
    assigned_by: str | None = None
    assigned_at: datetime


class TicketResolved(Event, type="ticket.resolved.v1"):
    """``confirmation_link`` lets the customer confirm (closes) or say it is not fixed (reopens)."""

    ticket_id: uuid.UUID
    ticket_number: str
    customer_id: str
    contact: ContactInfo | None = None
    resolution: str
    resolved_by: str
    resolved_at: datetime
    confirmation_link: str | None = None


class TicketClosed(Event, type="ticket.closed.v1"):
    """``reason``: confirmed (by the customer), no_answer (closed after N days) or agent."""

    ticket_id: uuid.UUID
    ticket_number: str
    reason: str
    closed_by: str | None = None
    closed_at: datetime


class TicketReopened(Event, type="ticket.reopened.v1"):
    ticket_id: uuid.UUID
    ticket_number: str
    reason: str
    reopened_by: str | None = None
    assignee_id: str | None = None
    reopened_at: datetime


class TicketSlaWarned(Event, type="ticket.sla_warned.v1"):
    """An SLA target (``kind``: first_response or resolution) is close to its deadline."""

    ticket_id: uuid.UUID
    ticket_number: str
    priority: str
    kind: str
    deadline: datetime
    assignee_id: str | None = None
    group: str
    warned_at: datetime


class TicketSlaBreached(Event, type="ticket.sla_breached.v1"):
    """Fired once per target; ``escalated_to`` is the role that must act (the support lead)."""

    ticket_id: uuid.UUID
    ticket_number: str
    priority: str
    kind: str
    target_seconds: float
    deadline: datetime
    assignee_id: str | None = None
    group: str
    escalated_to: str = "support_lead"
    breached_at: datetime


class TicketRepairCompleted(Event, type="ticket.repair_completed.v1"):
    """A ticket's repair is done and awaits the customer's acceptance: ``link`` is the customer's
    page to accept or reject it (a secret link: one answer, expires at ``expires_at``)."""

    ticket_id: uuid.UUID
    ticket_number: str
    repair_id: uuid.UUID
    customer_id: str
    contact: ContactInfo | None = None
    under_warranty: bool
    currency: str
    charged_amount: Decimal
    link: str | None = None
    expires_at: datetime | None = None
    completed_at: datetime


class SurveyReminded(Event, type="survey.reminded.v1"):
    """An unanswered survey's one reminder, with a fresh link (the first one keeps working)."""

    survey_id: uuid.UUID
    trigger: str
    order_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    customer_id: str
    contact: ContactInfo | None = None
    link: str | None = None
    expires_at: datetime | None = None


# --- webhooks ----------------------------------------------------------------------------


class WebhookSubscriptionDisabled(Event, type="webhook_subscription.disabled.v1"):
    """The webhooks service stopped delivering to a subscription's endpoint.

    ``reason``: ``endpoint_gone`` (the receiver answered 410 Gone) or ``failing`` (every
    delivery failed for ``failing_since`` .. ``disabled_at``, 5 days by default). An admin or
    the owner re-enables it with ``PATCH {"active": true}``.
    """

    subscription_id: uuid.UUID
    owner_id: str
    reason: str
    disabled_at: datetime
    failing_since: datetime | None = None
    last_status_code: int | None = None


class WebhookSubscriptionPinged(Event, type="webhook_subscription.pinged.v1"):
    """The body of a test ping (``POST /v1/webhook-subscriptions/{id}/ping``).

    Sent only to that subscription's endpoint, never published on the bus.
    """

    subscription_id: uuid.UUID
    message: str = "ping"


# --- leads: conversion, accounts, opportunities, quotes -------------------------------------


class LeadConverted(Event, type="lead.converted.v1"):
    """A qualified lead became an account, a contact and an opportunity (in one transaction)."""

    lead_id: uuid.UUID
    account_id: uuid.UUID
    customer_id: str
    customer_name: str
    contact_id: uuid.UUID
    contact: ContactInfo
    opportunity_id: uuid.UUID
    owner_id: str
    converted_by: str
    region: str | None = None
    team: str | None = None
    currency: str
    amount: Decimal
    converted_at: datetime


class AccountTierChanged(Event, type="account.tier_changed.v1"):
    """High value (weekly follow-up) or normal (monthly); the follow-up clock restarts."""

    account_id: str
    tier: str
    previous_tier: str
    changed_by: str
    next_follow_up_at: datetime


class AccountFollowUpDue(Event, type="account.follow_up_due.v1"):
    """The owner is due to follow up with the account (weekly for high value, monthly otherwise)."""

    account_id: str
    customer_name: str
    owner_id: str
    tier: str
    due_at: datetime
    next_follow_up_at: datetime


class OpportunityStageChanged(Event, type="opportunity.stage_changed.v1"):
    opportunity_id: uuid.UUID
    account_id: uuid.UUID
    owner_id: str
    stage: str
    previous_stage: str
    probability: Decimal
    amount: Decimal
    currency: str
    changed_by: str
    changed_at: datetime


class OpportunityLost(Event, type="opportunity.lost.v1"):
    opportunity_id: uuid.UUID
    account_id: uuid.UUID
    owner_id: str
    previous_stage: str
    reason: str
    amount: Decimal
    currency: str
    lost_by: str
    lost_at: datetime


class QuoteAccepted(Event, type="quote.accepted.v1"):
    """The customer accepted a quote: the opportunity can now be won on it."""

    quote_id: uuid.UUID
    quote_number: str
    opportunity_id: uuid.UUID
    account_id: uuid.UUID
    owner_id: str
    currency: str
    subtotal_amount: Decimal
    discount_pct: Decimal
    total_amount: Decimal
    accepted_by: str
    accepted_at: datetime


# --- leads: assignment, public pool, activities, first-contact deadlines -----------------


class LeadAssigned(Event, type="lead.assigned.v1"):
    """A lead got an owner. ``method``: ``rules`` (the assignment rules), ``manual`` (a manager),
    ``claim`` (a rep took it from the pool). The owner must log a first contact by
    ``first_contact_due_at`` or the lead goes back to the pool."""

    lead_id: uuid.UUID
    owner_id: str
    previous_owner_id: str | None = None
    method: str
    assigned_by: str
    region: str | None = None
    industry: str | None = None
    first_contact_due_at: datetime | None = None
    assigned_at: datetime


class LeadReturnedToPool(Event, type="lead.returned_to_pool.v1"):
    """A lead left its owner for the public pool. ``reason``: ``released`` (the rep gave it back,
    ``note`` says why) or ``no_first_contact`` (no contact logged in time; ``returned_by`` is
    ``system``). The rules then try to give it to another rep (``lead.assigned``)."""

    lead_id: uuid.UUID
    previous_owner_id: str
    reason: str
    note: str | None = None
    returned_by: str
    region: str | None = None
    industry: str | None = None
    returned_at: datetime


class ActivityLogged(Event, type="activity.logged.v1"):
    """A call, visit, email, meeting or note on a lead or an account. ``first_contact`` when it
    was the owner's first contact with the lead (it stops the first-contact clock)."""

    activity_id: uuid.UUID
    lead_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    kind: str
    outcome: str | None = None
    owner_id: str | None = None
    logged_by: str
    occurred_at: datetime
    next_follow_up_at: datetime | None = None
    first_contact: bool = False
    # "planned": a visit planned ahead, waiting for the manager's approval (then a report).
    status: str = "done"


class ActivityFollowUpDue(Event, type="activity.follow_up_due.v1"):
    """The follow-up an activity planned is due: a reminder for ``owner_id`` (the lead's or
    account's owner when it fell due)."""

    activity_id: uuid.UUID
    lead_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    owner_id: str | None = None
    kind: str
    outcome: str | None = None
    due_at: datetime


class AccountContactOverdue(Event, type="account.contact_overdue.v1"):
    """A new account got no logged contact within its deadline (7 days by default): its owner's
    manager is told (``manager_id``, None when the owner has no team manager) and may transfer it."""

    account_id: str
    customer_name: str
    owner_id: str
    manager_id: str | None = None
    created_at: datetime
    due_at: datetime


class LeadMerged(Event, type="lead.merged.v1"):
    """A duplicate lead was merged into this one (``lead_id``): both histories stay, the duplicate
    is marked ``merged_into_lead_id`` and follows this lead's owner."""

    lead_id: uuid.UUID
    merged_lead_id: uuid.UUID
    owner_id: str | None = None
    merged_by: str
    reason: str | None = None
    merged_at: datetime


class ActivityVisitReviewed(Event, type="activity.visit_reviewed.v1"):
    """A manager approved (or turned down) a planned visit."""

    activity_id: uuid.UUID
    lead_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    approved: bool
    reviewed_by: str
    note: str | None = None
    planned_for: datetime


class ActivityVisitReported(Event, type="activity.visit_reported.v1"):
    """The report of an approved visit after it happened; it counts as a contact from then on."""

    activity_id: uuid.UUID
    lead_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    outcome: str | None = None
    reported_by: str
    first_contact: bool = False
    reported_at: datetime
