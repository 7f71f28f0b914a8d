-- The demo application: a shop's order table, queried by customer.
CREATE TABLE IF NOT EXISTS orders (
    id          bigserial PRIMARY KEY,
    customer_id integer      NOT NULL,
    status      text         NOT NULL,
    amount      numeric(10,2) NOT NULL,
    created_at  timestamptz  NOT NULL
);
