-- The reconciliation payment (`rcm_…`, from reconciliation.match_confirmed) that settled a bank
-- transfer or direct debit, when reconciliation matched the money on its own. Invoicing applies
-- that money under the reconciliation payment's id, so what it applied of it is looked up there
-- (payment_applications.payment_id holds reconciliation payment ids as well as our own).
ALTER TABLE payment_intents ADD COLUMN settled_by UUID;
CREATE INDEX payment_intents_settled_by ON payment_intents (tenant_id, settled_by) WHERE settled_by IS NOT NULL;
