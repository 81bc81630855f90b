DROP TABLE server_certificates;
DROP TABLE peer_certificates;
