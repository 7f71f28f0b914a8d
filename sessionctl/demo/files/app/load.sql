-- 300k orders across 30k customers: big enough that a sequential scan per lookup hurts.
INSERT INTO orders (customer_id, status, amount, created_at)
SELECT (random() * 30000)::int,
       (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + (g % 4)],
       round((random() * 500)::numeric, 2),
       now() - make_interval(mins => g)
FROM generate_series(1, 300000) AS g;
ANALYZE orders;
