DROP TABLE peer_backoff;
