-- glimpse schema, step 3: API keys, stored hashed (sha256 of a random 32-byte secret).
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL,
    prefix       text NOT NULL,          -- first characters, shown in listings
    hash         text NOT NULL UNIQUE,   -- sha256 hex of the whole key
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
