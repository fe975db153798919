-- Access control. Keep in step with the other dialect.
-- A worker's key (Register hands it out once) is kept as its SHA-256; re-registering a known
-- worker id needs the key, and every worker write is checked against it.
ALTER TABLE workers ADD COLUMN key_hash TEXT;

-- Tokens with roles. Only a token's SHA-256 is stored; its secret is shown once, at creation.
CREATE TABLE tokens (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL CHECK (role IN ('worker', 'user', 'admin')),
    hash       TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
