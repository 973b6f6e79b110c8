"""Contract commands. Each opens the unit of work and ends with an explicit commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.contracts.db import (
    ArchiveRepository,
    ContractRepository,
    DocumentRepository,
    HistoryRepository,
    SigningLinkRepository,
)
from services.contracts.documents import next_document
from services.contracts.domain import (
    ApprovalStep,
    ClauseComment,
    Contract,
    ContractLine,
    ContractStatus,
    ReviewDecision,
)
from services.contracts.domain.document import Document, SignedArchive
from services.contracts.domain.payment import PaymentPlan
from services.contracts.domain.signing import (
    LinkRefused,
    LinkState,
    Party,
    Signatory,
    Signature,
    SigningLink,
    hash_token,
)
from shared.auth import Principal
from shared.domain import DomainError, InvalidTransition, NotFound
from shared.events import ContactInfo, OpportunityWon
from shared.pagination import PageParams
from shared.policies import discount_authority
from shared.uow import UnitOfWork


@dataclass(frozen=True)
class DraftContract:
    customer_id: str
    customer_name: str
    owner_id: str
    currency: str
    lines: list[ContractLine]
    payment_terms: str | None  # None: the plan's wording, or "net 30" without a plan
    contact: ContactInfo | None = None
    region: str | None = None
    discount_pct: Decimal = Decimal(0)
    delivery_address: str | None = None
    requested_delivery_date: str | None = None
    special_clauses: tuple[str, ...] = ()
    payment_plan: PaymentPlan | None = None  # when given, payment_terms must agree with it
    free_revisions: int = 0
    paid_service_included: bool = False
    owner_role: str = "sales_rep"  # whose discount authority the approval routing starts from
    drafted_by: str | None = None  # for the history


def owner_role_for(principal: Principal, owner_id: str) -> str:
    """The owner's role for approval routing: the drafter's own authority when they own it, else a rep's."""
    if owner_id != principal.sub:
        return "sales_rep"
    level = discount_authority().authority_of(principal.roles)
    return level.role if level is not None else "sales_rep"


async def _save(contracts: ContractRepository, contract: Contract, now: datetime, *, new: bool = False) -> None:
    """Write the contract, and a new document version when its rendering changed (terms or revision)."""
    document = next_document(contract, now)
    await (contracts.add(contract) if new else contracts.save(contract))
    if document is not None:
        await DocumentRepository(contracts.uow).add(document)


async def draft_contract(cmd: DraftContract, uow: UnitOfWork) -> Contract:
    async with uow:
        contracts = ContractRepository(uow)
        now = datetime.now(UTC)
        fields = {**cmd.__dict__, "special_clauses": list(cmd.special_clauses)}
        contract = Contract.draft(
            id=uuid.uuid4(),
            number=await contracts.next_number(now),
            created_at=now,
            by=fields.pop("drafted_by"),
            **fields,
        )
        await _save(contracts, contract, now, new=True)
        await uow.commit()
    return contract


async def _revoke_active_links(
    links: SigningLinkRepository, contract: Contract, principal: Principal, now: datetime, *, party: Party | None = None
) -> None:
    """Revoke the contract's (or one party's) links still usable, each noted in the history."""
    for link in await links.for_contract(contract.id, for_update=True):
        if link.state(now) == LinkState.ACTIVE and party in (None, link.party):
            await links.save(link.revoked(now, by=principal.sub))
            contract.log("signing_link_revoked", now, principal.sub, party=link.party.value, link_id=link.id)


async def draft_from_won_opportunity(event: OpportunityWon, uow: UnitOfWork) -> Contract | None:
    """The draft of a won opportunity, once: None when that opportunity already has its contract
    (the consumer's unit of work is open; the runner commits)."""
    contracts = ContractRepository(uow)
    if await contracts.for_opportunity(event.opportunity_id) is not None:
        return None  # the same opportunity won again under another event id: state guard
    now = datetime.now(UTC)
    contract = Contract.from_won_opportunity(event, id=uuid.uuid4(), number=await contracts.next_number(now), now=now)
    await _save(contracts, contract, now, new=True)
    return contract


async def amend_contract(
    contract_id: uuid.UUID, terms: dict, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> Contract:
    """Change the terms; past the draft the contract returns to draft as a new revision, and the
    signing links still out are revoked (they were for a document that no longer applies)."""
    async with uow:
        contracts, links = ContractRepository(uow), SigningLinkRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        now = datetime.now(UTC)
        contract.amend(terms, by=principal.sub, now=now)
        await _revoke_active_links(links, contract, principal, now)
        await _save(contracts, contract, now)
        await uow.commit()
    return contract


async def list_documents(contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> list[Document]:
    async with uow:
        contract = await ContractRepository(uow).get_visible(contract_id, principal)
        return await DocumentRepository(uow).for_contract(contract.id)


async def get_document(contract_id: uuid.UUID, version: int, principal: Principal, uow: UnitOfWork) -> Document:
    """One document version, checked against its recorded SHA-256 before anyone sees it."""
    async with uow:
        contract = await ContractRepository(uow).get_visible(contract_id, principal)
        document = await DocumentRepository(uow).get(contract.id, version)
    if document is None:
        raise NotFound(f"contract {contract_id} has no document version {version}")
    document.verify()
    return document


async def get_contract(contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Contract:
    async with uow:
        return await ContractRepository(uow).get_visible(contract_id, principal)


async def list_contracts(
    principal: Principal,
    uow: UnitOfWork,
    page: PageParams,
    *,
    customer_id: str | None = None,
    status: str | None = None,
    opportunity_id: uuid.UUID | None = None,
) -> tuple[list[Contract], str | None]:
    async with uow:
        filters = {"customer_id": customer_id, "status": status, "opportunity_id": opportunity_id}
        return await ContractRepository(uow).list(principal, page, filters=filters)


async def submit_contract(
    contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> Contract:
    """Submit the draft revision for legal review (``contract.submitted``)."""
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        contract.submit(by=principal.sub, now=datetime.now(UTC))
        await contracts.save(contract)
        await uow.commit()
    return contract


async def review_contract(
    contract_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    decision: ReviewDecision,
    comments: tuple[ClauseComment, ...] = (),
    note: str | None = None,
    if_match: int | None = None,
) -> Contract:
    """Legal approves the revision (on to approval routing) or requests changes per clause."""
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        contract.review(
            by=principal.sub,
            decision=decision,
            comments=comments,
            note=note,
            now=datetime.now(UTC),
            policy=discount_authority(),
        )
        await _save(contracts, contract, datetime.now(UTC))
        await uow.commit()
    return contract


async def approve_contract(
    contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> tuple[Contract, ApprovalStep]:
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        step = contract.approve(
            by=principal.sub,
            roles=principal.roles,
            region=principal.region,
            now=datetime.now(UTC),
            policy=discount_authority(),
        )
        await contracts.save(contract)
        await uow.commit()
    return contract, step


async def reject_contract(
    contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, reason: str, if_match: int | None = None
) -> tuple[Contract, ApprovalStep]:
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        step = contract.reject(
            by=principal.sub,
            roles=principal.roles,
            region=principal.region,
            reason=reason,
            now=datetime.now(UTC),
            policy=discount_authority(),
        )
        await _save(contracts, contract, datetime.now(UTC))
        await uow.commit()
    return contract, step


@dataclass(frozen=True)
class IssuedLink:
    link: SigningLink
    token: str  # shown once; only its hash is stored


async def send_for_signature(
    contract_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    customer: Signatory,
    company: Signatory,
    ttl: timedelta,
    if_match: int | None = None,
) -> tuple[Contract, list[IssuedLink]]:
    """Issue one signing link per party for the approved revision (``contract.sent_for_signature``)."""
    async with uow:
        contracts, links = ContractRepository(uow), SigningLinkRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        now = datetime.now(UTC)
        issued = [
            IssuedLink(
                *SigningLink.issue(
                    contract_id=contract.id, revision=contract.revision, party=party, signatory=who, now=now, ttl=ttl
                )
            )
            for party, who in ((Party.CUSTOMER, customer), (Party.COMPANY, company))
        ]
        contract.send_for_signature([i.link for i in issued], by=principal.sub, now=now)
        await _revoke_active_links(links, contract, principal, now)  # an earlier round's links
        for i in issued:
            await links.add(i.link)
        await contracts.save(contract)
        await uow.commit()
    return contract, issued


async def list_signing_links(contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> list[SigningLink]:
    async with uow:
        contract = await ContractRepository(uow).get_visible(contract_id, principal)
        return await SigningLinkRepository(uow).for_contract(contract.id)


async def reissue_signing_link(
    contract_id: uuid.UUID,
    party: Party,
    principal: Principal,
    uow: UnitOfWork,
    *,
    ttl: timedelta,
    signatory: Signatory | None = None,
) -> IssuedLink:
    """A new link for one party of a contract out for signature; that party's active links are revoked."""
    async with uow:
        contracts, links = ContractRepository(uow), SigningLinkRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal)
        if contract.status != ContractStatus.OUT_FOR_SIGNATURE:
            raise InvalidTransition(f"a {contract.status} contract has no signing links to reissue")
        now = datetime.now(UTC)
        if signatory is None:
            existing = [link for link in await links.for_contract(contract.id) if link.party == party]
            if not existing:
                raise DomainError(f"name the {party} signatory")
            signatory = existing[-1].signatory
        await _revoke_active_links(links, contract, principal, now, party=party)
        issued = IssuedLink(
            *SigningLink.issue(
                contract_id=contract.id, revision=contract.revision, party=party, signatory=signatory, now=now, ttl=ttl
            )
        )
        await links.add(issued.link)
        contract.log("signing_link_issued", now, principal.sub, party=party.value, link_id=issued.link.id)
        await HistoryRepository(uow).write(contract)
        await uow.commit()
    return issued


async def revoke_signing_link(
    contract_id: uuid.UUID, link_id: uuid.UUID, principal: Principal, uow: UnitOfWork
) -> SigningLink:
    async with uow:
        contract = await ContractRepository(uow).get_for_change(contract_id, principal)
        links = SigningLinkRepository(uow)
        link = next((x for x in await links.for_contract(contract.id, for_update=True) if x.id == link_id), None)
        if link is None:
            raise NotFound(f"no signing link {link_id}")
        revoked = link.revoked(datetime.now(UTC), by=principal.sub)
        await links.save(revoked)
        contract.log("signing_link_revoked", revoked.revoked_at, principal.sub, party=link.party.value, link_id=link.id)
        await HistoryRepository(uow).write(contract)
        await uow.commit()
    return revoked


@dataclass(frozen=True)
class SigningView:
    contract: Contract
    link: SigningLink
    document: Document


async def _usable_link(
    token: str, contracts: ContractRepository, links: SigningLinkRepository, now: datetime, *, for_change: bool
) -> SigningView:
    """The link, its contract (locked first when ``for_change``, in the order every other command
    locks: contract, then links) and the current document, verified against its SHA-256."""
    link = await links.by_token_hash(hash_token(token))
    if link is None:
        raise LinkRefused("this signing link is not valid: check that it is complete", "unknown")
    if for_change:
        contract = await contracts.get_for_change(link.contract_id, None)
        link = await links.by_token_hash(link.token_hash, for_update=True) or link
    else:
        contract = await contracts.get_visible(link.contract_id, None)
    link.check_usable(now, revision=contract.revision)
    if contract.status != ContractStatus.OUT_FOR_SIGNATURE:
        raise LinkRefused("this contract is no longer out for signature", "superseded")
    document = await DocumentRepository(contracts.uow).get(contract.id, contract.document_version)
    if document is None:
        raise NotFound(f"contract {contract.id} has no document to sign")
    document.verify(contract.document_sha256)
    return SigningView(contract, link, document)


async def open_signing_link(token: str, uow: UnitOfWork, *, now: datetime | None = None) -> SigningView:
    """What the (public) signing page shows for ``token``: refused when unknown, used, revoked,
    expired or issued for an earlier revision; a document failing its hash check is never shown."""
    async with uow:
        return await _usable_link(
            token, ContractRepository(uow), SigningLinkRepository(uow), now or datetime.now(UTC), for_change=False
        )


@dataclass(frozen=True)
class SignWithLink:
    token: str
    typed_name: str
    confirmed: bool
    seen_sha256: str | None = None  # the document the signer was shown, if the form says
    ip: str | None = None
    user_agent: str | None = None


async def sign_with_link(cmd: SignWithLink, uow: UnitOfWork) -> Contract:
    """A party signs through their link (used up); the last party signs the contract (``contract.signed``)."""
    async with uow:
        now = datetime.now(UTC)
        contracts, links = ContractRepository(uow), SigningLinkRepository(uow)
        view = await _usable_link(cmd.token, contracts, links, now, for_change=True)
        contract, link, document = view.contract, view.link, view.document
        if cmd.seen_sha256 is not None and cmd.seen_sha256 != document.sha256:
            raise LinkRefused("the document changed after it was shown: reload it before signing", "superseded")
        signature = Signature.by_link(
            link,
            typed_name=cmd.typed_name,
            confirmed=cmd.confirmed,
            document_version=document.version,
            document_sha256=document.sha256,
            now=now,
            ip=cmd.ip,
            user_agent=cmd.user_agent,
        )
        contract.sign(signature, document)
        await links.save(link.used(now, revision=contract.revision))
        await contracts.save(contract)
        if contract.status == ContractStatus.SIGNED:  # the last signature: archive what was signed
            archive = SignedArchive.of(contract.number, document, contract.current_signatures, now)
            await ArchiveRepository(uow).add(archive)
            contract.log("archived", now, None, document_sha256=archive.document_sha256)
            await HistoryRepository(uow).write(contract)
        await uow.commit()
    return contract


async def get_archive(contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> SignedArchive:
    """The signed contract's archive, checked against its SHA-256 before anyone sees it."""
    async with uow:
        contract = await ContractRepository(uow).get_visible(contract_id, principal)
        archive = await ArchiveRepository(uow).get(contract.id)
    if archive is None:
        raise NotFound(f"contract {contract_id} is not signed: nothing is archived yet")
    archive.verify()
    return archive


async def activate_contract(
    contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> Contract:
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        contract.activate(by=principal.sub, now=datetime.now(UTC))
        await contracts.save(contract)
        await uow.commit()
    return contract


async def end_contract(
    contract_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    terminate: bool,
    reason: str,
    if_match: int | None = None,
) -> Contract:
    """Complete an active contract, or terminate a signed or active one (``contract.terminated``)."""
    async with uow:
        contracts = ContractRepository(uow)
        contract = await contracts.get_for_change(contract_id, principal, if_match=if_match)
        end = contract.terminate if terminate else contract.complete
        end(by=principal.sub, reason=reason, now=datetime.now(UTC))
        await contracts.save(contract)
        await uow.commit()
    return contract


async def contract_history(
    contract_id: uuid.UUID, principal: Principal, uow: UnitOfWork, page: PageParams
) -> tuple[list, str | None]:
    async with uow:
        contract = await ContractRepository(uow).get_visible(contract_id, principal)
        return await HistoryRepository(uow).page(contract.id, page)
