-- A customer's credit (unapplied payments) is read with every customer; without this index that
-- read scans every payment of the tenant.
CREATE INDEX payments_customer_credit ON payments (tenant_id, customer_id) WHERE unapplied > 0;
