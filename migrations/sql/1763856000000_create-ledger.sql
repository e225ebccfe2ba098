-- Up Migration
-- An application table: every acknowledged write has a row. The load and fault suites use it
-- as their ledger to prove that no acknowledged commit is lost; apps can use it as an example.
CREATE TABLE ledger (
  id          bigint      PRIMARY KEY,
  writer      text        NOT NULL,
  amount      bigint      NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_writer_created_at_idx ON ledger (writer, created_at);
COMMENT ON TABLE ledger IS 'poolguard example table; the fault suite records acknowledged commits here';

-- Down Migration
DROP TABLE ledger;
