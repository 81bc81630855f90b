-- Per-peer backoff of the PeerClient (issue 17): a peer that keeps failing is skipped until
-- `retry_at` (growing with `failures`, or the peer's own Retry-After), so dead peers cannot
-- stall a tick. The row goes with a successful call, or when the peer comes back to us (its
-- inbound heartbeat moves it to active). Its own table: `peers` is at diesel's 32 columns.
CREATE TABLE peer_backoff (
    peer_id uuid PRIMARY KEY REFERENCES peers (id) ON DELETE CASCADE,
    failures integer NOT NULL CHECK (failures > 0),
    retry_at timestamptz
);
CREATE INDEX peer_backoff_retry_at ON peer_backoff (retry_at) WHERE retry_at IS NOT NULL;
