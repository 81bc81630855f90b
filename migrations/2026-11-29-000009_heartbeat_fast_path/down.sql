DROP FUNCTION federation_heartbeat_active(text);
