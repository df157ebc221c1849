-- Release v2: every line now carries its total, and the database keeps it consistent.
ALTER TABLE order_items ALTER COLUMN line_total_cents SET NOT NULL;
ALTER TABLE order_items ADD CONSTRAINT order_items_line_total_matches
    CHECK (line_total_cents = quantity::bigint * unit_price_cents);
