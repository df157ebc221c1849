-- Release v2: users.name becomes full_name, orders get a currency, order lines get a stored line total.
-- Code of release v1 cannot run against this schema (it reads users.name and inserts lines without totals).
ALTER TABLE users RENAME COLUMN name TO full_name;
ALTER TABLE orders ADD COLUMN currency char(3) NOT NULL DEFAULT 'EUR'
    CONSTRAINT orders_currency_iso CHECK (currency ~ '^[A-Z]{3}$');
ALTER TABLE order_items ADD COLUMN line_total_cents bigint
    CONSTRAINT order_items_line_total_not_negative CHECK (line_total_cents >= 0);
