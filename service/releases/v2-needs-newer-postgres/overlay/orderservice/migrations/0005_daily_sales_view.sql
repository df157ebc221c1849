-- A reporting view of sales per day and currency. GROUP BY ALL (group by every non-aggregate column)
-- first appeared in PostgreSQL 19.
CREATE VIEW daily_sales AS
SELECT date_trunc('day', created_at) AS day, currency, count(*) AS orders, sum(total_cents) AS total_cents
FROM orders
GROUP BY ALL;
