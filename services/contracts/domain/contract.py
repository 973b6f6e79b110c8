"""The contract aggregate and its state machine.

    draft -> in_review -> pending_approval -> approved -> out_for_signature -> signed -> active
          -> completed | terminated

Legal review approves (on to approval routing) or requests changes with comments per clause;
an approver's rejection or legal's change request returns the contract to ``draft`` as a new
revision. Approval steps come from the shared discount authority policy (see ``approval``);
a revision that needs none is approved when legal approves it. Any other move is a 409.

A contract is signed only through the signing links of both parties (:meth:`Contract.sign`):
the last party's signature over the current, hash-verified document signs it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any

from services.contracts.domain.approval import ApprovalStep, StepStatus, deciding_level, route
from services.contracts.domain.document import Document
from services.contracts.domain.payment import PaymentPlan
from services.contracts.domain.signing import Party, Signature, SigningLink
from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import (
    ContactInfo,
    ContractApprovalDecision,
    ContractApproved,
    ContractClauseComment,
    ContractDrafted,
    ContractRejected,
    ContractSentForSignature,
    ContractSigned,
    ContractSigningParty,
    ContractSubmitted,
    ContractTerminated,
    OpportunityWon,
)
from shared.events import ContractLine as ContractLineEvent
from shared.money import money
from shared.policies import AuthorityLevel, DiscountAuthority

ADMIN = "admin"
SALES_REP = "sales_rep"
LEGAL = "legal"
REGIONAL_DIRECTOR = "regional_director"
MARKETING_DIRECTOR = "marketing_director"

DEFAULT_PAYMENT_TERMS = "net 30"
HUNDRED = Decimal(100)


class ContractStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    OUT_FOR_SIGNATURE = "out_for_signature"
    SIGNED = "signed"
    ACTIVE = "active"
    COMPLETED = "completed"
    TERMINATED = "terminated"


S = ContractStatus
TRANSITIONS: dict[ContractStatus, frozenset[ContractStatus]] = {
    S.DRAFT: frozenset({S.IN_REVIEW}),
    S.IN_REVIEW: frozenset({S.PENDING_APPROVAL, S.APPROVED, S.DRAFT}),
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.DRAFT}),
    S.APPROVED: frozenset({S.OUT_FOR_SIGNATURE, S.DRAFT}),
    S.OUT_FOR_SIGNATURE: frozenset({S.SIGNED, S.DRAFT}),  # a changed document goes back to draft
    S.SIGNED: frozenset({S.ACTIVE, S.TERMINATED}),
    S.ACTIVE: frozenset({S.COMPLETED, S.TERMINATED}),
    S.COMPLETED: frozenset(),
    S.TERMINATED: frozenset(),
}


AMENDABLE = frozenset(
    {
        "lines",
        "discount_pct",
        "payment_terms",
        "contact",
        "region",
        "delivery_address",
        "requested_delivery_date",
        "special_clauses",
        "payment_plan",
        "free_revisions",
        "paid_service_included",
    }
)
AMENDABLE_IN = frozenset({S.DRAFT, S.IN_REVIEW, S.PENDING_APPROVAL, S.APPROVED, S.OUT_FOR_SIGNATURE})


class NotAnApprover(DomainError):
    """The caller does not hold the authority this step needs."""

    status = 403
    title = "Forbidden"


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"


@dataclass(frozen=True)
class ClauseComment:
    clause: str
    comment: str


@dataclass(frozen=True)
class Review:
    revision: int
    reviewer: str
    decision: ReviewDecision
    reviewed_at: datetime
    comments: tuple[ClauseComment, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the audit trail: what happened to which revision, when, and who did it."""

    action: str
    at: datetime
    actor: str | None
    revision: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContractLine:
    sku: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_pct: Decimal = Decimal(0)
    warranty_months: int = 0

    @cached_property  # a line is immutable; a contract's totals, document and event read it often
    def amount(self) -> Decimal:
        return money(self.quantity * self.unit_price * (HUNDRED - self.discount_pct) / HUNDRED)


@dataclass(eq=False)
class Contract(Aggregate):
    id: uuid.UUID
    number: str
    customer_id: str
    customer_name: str
    owner_id: str
    currency: str
    lines: list[ContractLine]
    payment_terms: str
    created_at: datetime
    contact: ContactInfo | None = None
    region: str | None = None
    discount_pct: Decimal = Decimal(0)
    delivery_address: str | None = None
    requested_delivery_date: str | None = None
    status: ContractStatus = ContractStatus.DRAFT
    signed_at: datetime | None = None
    revision: int = 1
    owner_role: str = SALES_REP
    reviews: list[Review] = field(default_factory=list)
    approvals: list[ApprovalStep] = field(default_factory=list)
    submitted_at: datetime | None = None
    approved_at: datetime | None = None
    sent_for_signature_at: datetime | None = None
    document_version: int = 0  # the current rendered document (0: none yet)
    document_sha256: str | None = None
    signatures: list[Signature] = field(default_factory=list)
    payment_plan: PaymentPlan | None = None  # when given, the source of truth: payment_terms is its wording
    special_clauses: list[str] = field(default_factory=list)
    free_revisions: int = 0  # revisions of the delivered work included free of charge
    paid_service_included: bool = False  # whether paid service (beyond warranty) is part of the contract
    opportunity_id: uuid.UUID | None = None  # drafted from a won opportunity's accepted quote
    quote_id: uuid.UUID | None = None
    activated_at: datetime | None = None
    ended_at: datetime | None = None  # completed or terminated
    ended_by: str | None = None
    end_reason: str | None = None
    # The audit trail entries not yet written (the repository appends them to the history table).
    pending_history: list[HistoryEntry] = field(default_factory=list, repr=False)

    @property
    def subtotal_amount(self) -> Decimal:
        return money(sum((line.amount for line in self.lines), Decimal(0)))

    @property
    def total_amount(self) -> Decimal:
        return money(self.subtotal_amount * (HUNDRED - self.discount_pct) / HUNDRED)

    def _check_terms(self, stated_terms: str | None = None) -> None:
        """``stated_terms``: the free-text terms the caller sent, which a plan must agree with."""
        if self.payment_plan is not None:
            self.payment_plan.check()
            self.payment_plan.check_stated(stated_terms)
            self.payment_terms = self.payment_plan.describe()
        if not self.lines:
            raise DomainError("a contract needs at least one line")
        for line in self.lines:
            if line.quantity <= 0:
                raise DomainError(f"line {line.sku}: quantity must be positive")
            if line.unit_price < 0:
                raise DomainError(f"line {line.sku}: unit price must not be negative")
            if not (0 <= line.discount_pct < 100):
                raise DomainError(f"line {line.sku}: discount must be between 0 and 100 %")
        if not (0 <= self.discount_pct < 100):
            raise DomainError("discount must be between 0 and 100 %")
        if any(not clause.strip() for clause in self.special_clauses):
            raise DomainError("a special clause must not be empty")
        if self.free_revisions < 0:
            raise DomainError("free revisions must not be negative")

    def log(self, action: str, now: datetime, by: str | None, **detail: Any) -> None:
        self.pending_history.append(HistoryEntry(action, now, by, self.revision, detail))

    @classmethod
    def draft(cls, *, by: str | None = None, **fields) -> Contract:
        stated_terms = fields.get("payment_terms")
        fields["payment_terms"] = stated_terms or DEFAULT_PAYMENT_TERMS  # a plan's wording replaces it
        contract = cls(**fields)
        contract._check_terms(stated_terms)
        contract.log(
            "drafted",
            contract.created_at,
            by,
            total_amount=contract.total_amount,
            currency=contract.currency,
            opportunity_id=contract.opportunity_id,
        )
        contract.record(
            ContractDrafted(
                contract_id=contract.id,
                contract_number=contract.number,
                customer_id=contract.customer_id,
                customer_name=contract.customer_name,
                owner_id=contract.owner_id,
                currency=contract.currency,
                total_amount=contract.total_amount,
            )
        )
        return contract

    @classmethod
    def from_won_opportunity(cls, event: OpportunityWon, *, id: uuid.UUID, number: str, now: datetime) -> Contract:
        """The draft of a won opportunity: the accepted quote's lines, amounts, discount, customer,
        contact, owner and region, as the event carries them (no call back to the CRM)."""
        return cls.draft(
            id=id,
            number=number,
            created_at=now,
            customer_id=event.account_id,
            customer_name=event.customer_name,
            contact=event.contact,
            owner_id=event.owner_id,
            region=event.region,
            currency=event.currency,
            lines=[
                ContractLine(
                    sku=line.sku,
                    description=line.description,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    discount_pct=line.discount_pct,
                    warranty_months=line.warranty_months,
                )
                for line in sorted(event.lines, key=lambda line: line.line_no)
            ],
            discount_pct=event.discount_pct,
            payment_terms=event.payment_terms or DEFAULT_PAYMENT_TERMS,
            delivery_address=event.delivery_address,
            requested_delivery_date=event.requested_delivery_date,
            opportunity_id=event.opportunity_id,
            quote_id=event.quote_id,
        )

    # -- review and approval --------------------------------------------------------------

    @property
    def list_amount(self) -> Decimal:
        return money(sum((line.quantity * line.unit_price for line in self.lines), Decimal(0)))

    def net_unit_price(self, line: ContractLine) -> Decimal:
        """What the customer pays per unit of ``line``: line and header discounts applied."""
        return money(line.unit_price * (HUNDRED - line.discount_pct) * (HUNDRED - self.discount_pct) / HUNDRED**2)

    @property
    def effective_discount_pct(self) -> Decimal:
        """The discount off the list amount, line and header discounts together."""
        if self.list_amount <= 0:
            return Decimal(0)
        return money((self.list_amount - self.total_amount) * HUNDRED / self.list_amount)

    @property
    def current_steps(self) -> list[ApprovalStep]:
        return [step for step in self.approvals if step.revision == self.revision]

    @property
    def pending_step(self) -> ApprovalStep | None:
        return next((s for s in self.current_steps if s.status == StepStatus.PENDING), None)

    def _move(self, to: ContractStatus, action: str) -> None:
        if to not in TRANSITIONS[self.status]:
            raise InvalidTransition(f"a {self.status} contract cannot be {action}")
        self.status = to

    def _back_to_draft(self) -> None:
        """A rejected revision: the contract becomes a draft again, as the next revision."""
        self._move(ContractStatus.DRAFT, "returned to draft")
        self.revision += 1
        self.submitted_at = None
        self.approved_at = None

    # -- terms and documents --------------------------------------------------------------

    def amend(self, terms: dict[str, Any], *, by: str, now: datetime) -> None:
        """Change the terms. A draft stays the same revision; a contract in review, approval or
        out for signature goes back to draft as the next revision, so earlier review, approvals
        and signing links no longer apply to it."""
        unknown = set(terms) - AMENDABLE
        if unknown:
            raise DomainError(f"these terms cannot be amended: {', '.join(sorted(unknown))}")
        if self.status not in AMENDABLE_IN:
            raise InvalidTransition(f"a {self.status} contract cannot be amended")
        sent = sorted(terms)
        before = {name: getattr(self, name) for name in {*terms, "payment_terms"}}
        for name, value in terms.items():
            setattr(self, name, value)
        try:
            # Free text alone may restate the plan, not replace it: that takes payment_plan null.
            self._check_terms(terms.get("payment_terms"))
        except DomainError:
            for name, value in before.items():
                setattr(self, name, value)
            raise
        was = self.status
        if self.status != ContractStatus.DRAFT:
            self._supersede_pending_steps()
            self._back_to_draft()
        self.version += 1  # no event: the new document version and the history say what changed
        self.log("amended", now, by, terms=sent, previous_status=was.value)

    def attach_document(self, document: Document) -> None:
        """The rendered document of the current terms becomes the contract's current version."""
        if document.contract_id != self.id or document.revision != self.revision:
            raise DomainError("a document must render this contract's current revision")
        if document.version != self.document_version + 1:
            raise DomainError(f"the next document version is {self.document_version + 1}")
        self.document_version = document.version
        self.document_sha256 = document.sha256

    def submit(self, *, by: str, now: datetime) -> None:
        """Submit the current draft revision for legal review."""
        self._move(ContractStatus.IN_REVIEW, "submitted for review")
        self.submitted_at = now
        self.log("submitted", now, by)
        self.record(
            ContractSubmitted(
                contract_id=self.id,
                contract_number=self.number,
                revision=self.revision,
                owner_id=self.owner_id,
                submitted_by=by,
                currency=self.currency,
                total_amount=self.total_amount,
                discount_pct=self.effective_discount_pct,
                submitted_at=now,
            )
        )

    def review(
        self,
        *,
        by: str,
        decision: ReviewDecision,
        now: datetime,
        policy: DiscountAuthority,
        comments: tuple[ClauseComment, ...] = (),
        note: str | None = None,
    ) -> None:
        """Legal's decision on the revision in review: approve (on to approval) or request changes."""
        if self.status != ContractStatus.IN_REVIEW:
            raise InvalidTransition(f"a {self.status} contract is not in legal review")
        if by == self.owner_id:
            raise NotAnApprover("nobody reviews their own contract")
        if decision == ReviewDecision.REQUEST_CHANGES and not comments:
            raise DomainError("a change request needs at least one comment on a clause")
        if len({c.clause for c in comments}) != len(comments):
            raise DomainError("one comment per clause: merge the comments on the same clause")
        self.reviews.append(
            Review(
                revision=self.revision, reviewer=by, decision=decision, reviewed_at=now, comments=comments, note=note
            )
        )
        self.log(
            "legal_review",
            now,
            by,
            decision=decision.value,
            comments=[{"clause": c.clause, "comment": c.comment} for c in comments],
            note=note,
        )
        if decision == ReviewDecision.REQUEST_CHANGES:
            rejected = self.revision
            self._back_to_draft()
            self.record(
                ContractRejected(
                    contract_id=self.id,
                    contract_number=self.number,
                    revision=rejected,
                    owner_id=self.owner_id,
                    stage="legal_review",
                    rejected_by=by,
                    role=LEGAL,
                    reason=note or f"changes requested on {len(comments)} clause(s)",
                    comments=tuple(ContractClauseComment(clause=c.clause, comment=c.comment) for c in comments),
                    rejected_at=now,
                )
            )
            return
        steps = route(
            policy,
            revision=self.revision,
            owner_role=self.owner_role,
            discount_pct=self.effective_discount_pct,
            total=self.total_amount,
            currency=self.currency,
            net_prices=tuple((line.sku, self.net_unit_price(line)) for line in self.lines),
        )
        self.approvals.extend(steps)
        if steps:
            self._move(ContractStatus.PENDING_APPROVAL, "sent for approval")
            self.version += 1  # a state change without an event still changes the ETag
        else:
            self._approved(now, policy.version, approved_by=None)

    def approve(
        self, *, by: str, roles: frozenset[str], now: datetime, policy: DiscountAuthority, region: str | None = None
    ) -> ApprovalStep:
        """The pending step's approver approves; the last step approves the contract."""
        step = self._decidable_step(by, roles, region)
        level = deciding_level(policy, step, roles)
        decided = self._decide(step, StepStatus.APPROVED, by, roles, level, now, policy)
        if self.pending_step is None:
            self._approved(now, policy.version, approved_by=by)
        else:
            self.version += 1
        return decided

    def reject(
        self,
        *,
        by: str,
        roles: frozenset[str],
        reason: str,
        now: datetime,
        policy: DiscountAuthority,
        region: str | None = None,
    ) -> ApprovalStep:
        """The pending step's approver rejects: back to draft as a new revision."""
        if not reason.strip():
            raise DomainError("a rejection needs a reason")
        step = self._decidable_step(by, roles, region)
        level = deciding_level(policy, step, roles)
        decided = self._decide(step, StepStatus.REJECTED, by, roles, level, now, policy, reason=reason)
        self._supersede_pending_steps()
        rejected = self.revision
        self._back_to_draft()
        self.record(
            ContractRejected(
                contract_id=self.id,
                contract_number=self.number,
                revision=rejected,
                owner_id=self.owner_id,
                stage="approval",
                rejected_by=by,
                role=decided.decided_role or step.role,
                reason=reason,
                authority_pct=decided.authority_pct,
                policy_version=decided.decided_policy_version,
                threshold=decided.threshold,
                rejected_at=now,
            )
        )
        return decided

    def _supersede_pending_steps(self) -> None:
        self.approvals = [
            replace(s, status=StepStatus.SUPERSEDED)
            if s.revision == self.revision and s.status == StepStatus.PENDING
            else s
            for s in self.approvals
        ]

    def _decidable_step(self, by: str, roles: frozenset[str], region: str | None) -> ApprovalStep:
        if self.status != ContractStatus.PENDING_APPROVAL:
            raise InvalidTransition(f"a {self.status} contract has no approval pending")
        step = self.pending_step
        assert step is not None  # pending_approval always has a pending step
        if by == self.owner_id:
            raise NotAnApprover("nobody approves their own contract")
        if any(s.decided_by == by for s in self.current_steps):
            raise InvalidTransition("you already decided on this revision: another approver must take the next step")
        director_only = roles.isdisjoint({ADMIN, MARKETING_DIRECTOR})
        if step.role == REGIONAL_DIRECTOR and director_only and region and self.region and region != self.region:
            raise NotAnApprover(f"a regional director decides for their own region ({self.region} is not {region})")
        return step

    def _decide(
        self,
        step: ApprovalStep,
        status: StepStatus,
        by: str,
        roles: frozenset[str],
        level: AuthorityLevel | None,
        now: datetime,
        policy: DiscountAuthority,
        *,
        reason: str | None = None,
    ) -> ApprovalStep:
        """Record the decision; an admin without a policy level decides as ``admin`` (no limit)."""
        if level is None and ADMIN not in roles:
            raise NotAnApprover(f"this step needs the authority of {step.role}")
        decided = replace(
            step,
            status=status,
            decided_by=by,
            decided_role=level.role if level is not None else ADMIN,
            authority_pct=level.max_discount_pct if level is not None else None,
            decided_policy_version=policy.version,
            decided_at=now,
            reason=reason,
        )
        self.approvals = [decided if s is step else s for s in self.approvals]
        self.log(
            f"approval_{status.value}",
            now,
            by,
            step_role=step.role,
            decided_role=decided.decided_role,
            authority_pct=decided.authority_pct,
            policy_version=policy.version,
            threshold=step.threshold,
            reason=reason,
        )
        return decided

    def _approved(self, now: datetime, policy_version: str, *, approved_by: str | None) -> None:
        self._move(ContractStatus.APPROVED, "approved")
        self.approved_at = now
        self.log("approved", now, approved_by, policy_version=policy_version)
        self.record(
            ContractApproved(
                contract_id=self.id,
                contract_number=self.number,
                revision=self.revision,
                customer_id=self.customer_id,
                owner_id=self.owner_id,
                currency=self.currency,
                total_amount=self.total_amount,
                discount_pct=self.effective_discount_pct,
                policy_version=policy_version,
                approvals=tuple(
                    ContractApprovalDecision(
                        role=s.role,
                        decided_by=s.decided_by or "",
                        decided_role=s.decided_role or "",
                        authority_pct=s.authority_pct,
                        policy_version=s.decided_policy_version or s.policy_version,
                        threshold=s.threshold,
                    )
                    for s in self.current_steps
                ),
                approved_by=approved_by,
                approved_at=now,
            )
        )

    # -- signature ------------------------------------------------------------------------

    def send_for_signature(self, links: list[SigningLink], *, by: str, now: datetime) -> None:
        """An approved revision goes out with one fresh signing link per party."""
        if self.status != ContractStatus.APPROVED:
            raise InvalidTransition(f"a {self.status} contract cannot be sent for signature")
        if sorted(link.party for link in links) != sorted(Party):
            raise DomainError("sending for signature needs one link per party (customer and company)")
        if any(link.contract_id != self.id or link.revision != self.revision for link in links):
            raise DomainError("the signing links must be issued for this contract's current revision")
        self._move(ContractStatus.OUT_FOR_SIGNATURE, "sent for signature")
        self.sent_for_signature_at = now
        self.log(
            "sent_for_signature",
            now,
            by,
            document_version=self.document_version,
            parties=[{"party": x.party.value, "link_id": x.id, "signatory": x.signatory.name} for x in links],
        )
        self.record(
            ContractSentForSignature(
                contract_id=self.id,
                contract_number=self.number,
                revision=self.revision,
                owner_id=self.owner_id,
                customer_id=self.customer_id,
                parties=tuple(
                    ContractSigningParty(
                        party=link.party.value,
                        link_id=link.id,
                        signatory_name=link.signatory.name,
                        expires_at=link.expires_at,
                    )
                    for link in sorted(links, key=lambda link: link.party)
                ),
                sent_by=by,
                sent_at=now,
            )
        )

    @property
    def current_signatures(self) -> list[Signature]:
        return [sig for sig in self.signatures if sig.revision == self.revision]

    def sign(self, signature: Signature, document: Document) -> None:
        """One party signs the current document; the last party's signature signs the contract
        (``contract.signed``). The document must be the current version and hash to what was
        recorded when it was rendered, or nobody signs it."""
        if self.status != ContractStatus.OUT_FOR_SIGNATURE:
            raise InvalidTransition(f"a {self.status} contract is not out for signature")
        if signature.revision != self.revision or document.revision != self.revision:
            raise DomainError("the signature and the document must be for the current revision")
        if document.version != self.document_version or signature.document_version != document.version:
            raise DomainError(f"only the current document (version {self.document_version}) can be signed")
        document.verify(self.document_sha256)
        if signature.document_sha256 != document.sha256:
            raise DomainError("the signature must be over the current document's SHA-256")
        if any(sig.party == signature.party for sig in self.current_signatures):
            raise InvalidTransition(f"the {signature.party} has already signed this revision")
        self.signatures.append(signature)
        self.log(
            "signature",
            signature.signed_at,
            signature.signer_name,
            party=signature.party.value,
            document_version=signature.document_version,
            document_sha256=signature.document_sha256,
            ip=signature.ip,
        )
        if {sig.party for sig in self.current_signatures} == set(Party):
            self._move(ContractStatus.SIGNED, "signed")
            self._signed(signature.signed_at)
        else:
            self.version += 1

    def _signed(self, now: datetime) -> None:
        self.signed_at = now
        self.log("signed", now, None, document_sha256=self.document_sha256)
        self.record(
            ContractSigned(
                contract_id=self.id,
                contract_number=self.number,
                customer_id=self.customer_id,
                customer_name=self.customer_name,
                contact=self.contact,
                owner_id=self.owner_id,
                region=self.region,
                currency=self.currency,
                lines=tuple(
                    ContractLineEvent(
                        line_no=i,
                        sku=line.sku,
                        description=line.description,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        discount_pct=line.discount_pct,
                        amount=line.amount,
                        warranty_months=line.warranty_months,
                    )
                    for i, line in enumerate(self.lines, start=1)
                ),
                subtotal_amount=self.subtotal_amount,
                discount_pct=self.discount_pct,
                total_amount=self.total_amount,
                payment_terms=self.payment_terms,
                delivery_address=self.delivery_address,
                requested_delivery_date=self.requested_delivery_date,
                signed_at=now,
            )
        )

    # -- after signing ----------------------------------------------------------------------

    def activate(self, *, by: str, now: datetime) -> None:
        """The signed contract is in force (performance has started)."""
        self._move(ContractStatus.ACTIVE, "activated")
        self.activated_at = now
        self.version += 1
        self.log("activated", now, by)

    def complete(self, *, by: str, reason: str, now: datetime) -> None:
        """Every obligation of the active contract is fulfilled."""
        self._end(ContractStatus.COMPLETED, "completed", by=by, reason=reason, now=now)
        self.version += 1

    def terminate(self, *, by: str, reason: str, now: datetime) -> None:
        """The signed or active contract ends early (``contract.terminated``)."""
        previous = self.status
        self._end(ContractStatus.TERMINATED, "terminated", by=by, reason=reason, now=now)
        self.record(
            ContractTerminated(
                contract_id=self.id,
                contract_number=self.number,
                customer_id=self.customer_id,
                owner_id=self.owner_id,
                previous_status=previous.value,
                reason=self.end_reason or reason,
                terminated_by=by,
                terminated_at=now,
            )
        )

    def _end(self, to: ContractStatus, action: str, *, by: str, reason: str, now: datetime) -> None:
        if not reason.strip():
            raise DomainError(f"a contract is {action} with a reason")
        self._move(to, action)
        self.ended_at, self.ended_by, self.end_reason = now, by, reason.strip()
        self.log(action, now, by, reason=self.end_reason)
