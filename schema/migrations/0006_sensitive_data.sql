-- Encrypted sensitive columns with pgcrypto. The key is supplied per session
-- (SET app.encryption_key = ...) and never stored in the database.
-- Seed fixes: SECURITY DEFINER was unneeded (and would run with the owner's rights); a
-- missing key now raises a clear error instead of encrypting with an empty key.
ALTER TABLE users ADD COLUMN encrypted_personal_data bytea;

CREATE FUNCTION session_encryption_key() RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    key text := current_setting('app.encryption_key', true);
BEGIN
    IF key IS NULL OR length(key) < 16 THEN
        RAISE EXCEPTION 'app.encryption_key is not set for this session (need at least 16 characters)'
            USING ERRCODE = '28000';
    END IF;
    RETURN key;
END
$$;

CREATE FUNCTION encrypt_sensitive_data(data text) RETURNS bytea
LANGUAGE sql VOLATILE AS $$
    SELECT pgp_sym_encrypt(data, session_encryption_key(), 'cipher-algo=aes256')
$$;

CREATE FUNCTION decrypt_sensitive_data(encrypted_data bytea) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT pgp_sym_decrypt(encrypted_data, session_encryption_key())
$$;
