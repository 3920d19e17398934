-- Customers who pay by autopay (customer.upserted): before the due date they get a notice of the
-- coming charge instead of reminders.
ALTER TABLE customers ADD COLUMN autopay BOOLEAN NOT NULL DEFAULT false;
