"""Orders: order entry (from signed contracts and by hand), three-level approval with credit
control, fulfilment with shipments, ERP callbacks, payments and invoices.

Decisions worth knowing (see ``domain/order.py`` for the state machine):

- An order's owner has the discount authority of their highest sales role (orders from
  ``contract.signed`` belong to the contract's rep). The thresholds are the shared, versioned
  ``shared/policies/discount_authority.json``; every approval step records its version.
- The discount level is skipped, with the rule, when the owner's authority covers the effective
  discount (line and header discounts against quantity x unit price), or when the sales
  manager's does (their level already approves it). Nobody approves their own order.
- Finance's credit check: the customer's balance on its other approved, unclosed orders in the
  order's currency plus what is unpaid on this one, against the
  customer's limit from the ERP (or finance); without one,
  ``SALESLINE_ORDERS_DEFAULT_CREDIT_LIMIT`` (500,000) in the order's currency. A limit in
  another currency is not converted: the order waits on credit hold. Checks for one customer
  run one at a time (a transaction-scoped advisory lock), so concurrent approvals cannot
  together exceed the limit. ``GET /v1/credit-limits/{customer}`` shows the same figures.
- Prepayment comes from the payment terms ("30% prepayment, net 30", "prepaid", "cash in
  advance" = 100 %).
- A payment (by finance or the ERP) may not exceed what the order still owes: there is no refund
  or credit note here for a surplus to go to. The refusal (422 ``overpayment``) names the
  outstanding amount; the order's row lock serialises payments, so two at once cannot overpay.
- A terminated contract (``contract.terminated``) cancels its order (``order.cancelled``, by
  ``system``, the reason naming the contract) unless it is closed or goods have shipped: an order
  with shipped goods stays, to be delivered, invoiced and paid for what was shipped. The
  termination is remembered, so a ``contract.signed`` delivered after it enters no order; the two
  consumers take a transaction lock on the contract so neither misses the other's effect.
- Changes: before approval they amend and restart approval; after approval, until everything is
  delivered, they are change requests with their own approval round. Once goods are on shipments
  the change may only touch the rest: a line with quantities on shipments keeps its product, price
  and discount and cannot drop below them, the total cannot drop below what is invoiced or paid,
  and the delivery address cannot change once everything has shipped (a 409 names each refusal).
  Lines keep their numbers, so a change lists them in the same order. While a change request
  waits, no new shipment is released; if the last shipment arrives meanwhile, the request ends
  (``change_discarded``). A change that drops the undelivered rest delivers the order.
- ERP callbacks need the ERP client's bearer token (role ``integration``) and a Standard
  Webhooks signature (``SALESLINE_ORDERS_ERP_WEBHOOK_SECRET``, a development default only in
  development/test). ``webhook-id``\\ s are remembered for 7 days (longer than senders retry).
"""
